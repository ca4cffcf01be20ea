"""DPoP (RFC 9449) at /token, on DPoP-bound refresh families, at UserInfo (the bearer gate) and introspection.

Proofs are made by joserfc and PyJWT (tests/support/dpop.py), never by authserver's code. Every refusal
gets the RFC's error and never a token.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from joserfc import jws
from joserfc.jwk import ECKey, OctKey

from authserver.app import create_app
from authserver.services import Services
from authserver.settings import Settings
from authserver.tokens.opaque import digest
from tests.conftest import ISSUER, fast_passwords
from tests.support.dpop import Prover, ath_of, rsa_prover
from tests.support.factories import REDIRECT_URI, AppClient, authorize, make_client, make_user
from tests.support.lifecycle import frozen_app, introspect, resource_server

TOKEN_URL = f"{ISSUER}/token"
USERINFO_URL = f"{ISSUER}/userinfo"
SCOPE = "openid profile offline_access read:levels"


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def client_auth(client: AppClient, data: dict[str, str]) -> tuple[str, str] | None:
    if client.secret is None:
        data["client_id"] = client.client_id
        return None
    return (client.client_id, client.secret)


async def code_tokens(
    http: httpx.AsyncClient, services: Services, client: AppClient, prover: Prover | None, **extra: str
) -> httpx.Response:
    user = await make_user(services)
    params, verifier = await authorize(http, client, user, scope=SCOPE, extra=extra or None)
    data = {"grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT_URI, "code_verifier": verifier}
    auth = client_auth(client, data)
    headers = {"DPoP": prover.proof("POST", TOKEN_URL)} if prover else {}
    return await http.post("/token", data=data, auth=auth, headers=headers)


async def refresh_with(http: httpx.AsyncClient, client: AppClient, token: str, prover: Prover | None) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token}
    auth = client_auth(client, data)
    headers = {"DPoP": prover.proof("POST", TOKEN_URL)} if prover else {}
    return await http.post("/token", data=data, auth=auth, headers=headers)


async def machine_token(http: httpx.AsyncClient, client: AppClient, headers: Any) -> httpx.Response:
    assert client.secret is not None
    return await http.post(
        "/token", data={"grant_type": "client_credentials", "scope": "read:levels"}, auth=(client.client_id, client.secret),
        headers=headers,
    )


def userinfo_headers(prover: Prover, token: str, **options: Any) -> dict[str, str]:
    return {"Authorization": f"DPoP {token}", "DPoP": prover.proof("GET", USERINFO_URL, access_token=token, **options)}


def refused_without_token(response: httpx.Response, error: str = "invalid_dpop_proof") -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    assert "access_token" not in response.json()


# --- the happy paths ----------------------------------------------------------------------------------


async def test_public_client_gets_dpop_bound_tokens_and_a_bound_refresh_family(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, client_type="public")
    prover = Prover()
    response = await code_tokens(http, services, client, prover)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP"
    assert claims_of(body["access_token"])["cnf"] == {"jkt": prover.jkt}
    found = await services.tokens.get_refresh_token(digest(body["refresh_token"]))
    assert found is not None and found[1].dpop_jkt == prover.jkt

    # UserInfo with the DPoP scheme and a proof of the key (ath binds the proof to the token).
    info = await http.get("/userinfo", headers=userinfo_headers(prover, body["access_token"]))
    assert info.status_code == 200, info.text

    # Refresh needs the same key: another key or no proof is invalid_grant and does not end the family.
    for other in (Prover(), None):
        stolen = await refresh_with(http, client, body["refresh_token"], other)
        assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant", stolen.text
        assert "access_token" not in stolen.json()
    again = await refresh_with(http, client, body["refresh_token"], prover)
    assert again.status_code == 200, again.text
    assert again.json()["token_type"] == "DPoP"
    assert claims_of(again.json()["access_token"])["cnf"] == {"jkt": prover.jkt}
    # The successor is bound too.
    stolen = await refresh_with(http, client, again.json()["refresh_token"], Prover())
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    # A consumed bound token replayed without the key is refused and revokes nothing (no griefing) ...
    replayed = await refresh_with(http, client, body["refresh_token"], Prover())
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_grant"
    assert found[1].grant_id and (await services.tokens.get_grant(found[1].grant_id)).revoked_at is None  # type: ignore[union-attr]
    # ... while the owner's own replay (with the key) is reuse once its successor was used (before that, within
    # the grace period, a replay gets the lost answer back: test_refresh_grace.py): the family is revoked.
    third = await refresh_with(http, client, again.json()["refresh_token"], prover)
    assert third.status_code == 200, third.text
    reuse = await refresh_with(http, client, body["refresh_token"], prover)
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    assert (await services.tokens.get_grant(found[1].grant_id)).revoked_at is not None  # type: ignore[union-attr]


async def test_confidential_client_access_tokens_are_bound_but_its_refresh_tokens_are_not(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    prover = Prover()
    response = await code_tokens(http, services, client, prover)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "DPoP" and claims_of(body["access_token"])["cnf"] == {"jkt": prover.jkt}
    found = await services.tokens.get_refresh_token(digest(body["refresh_token"]))
    assert found is not None and found[1].dpop_jkt is None
    # RFC 9449 §5: the client authenticates, so its refresh token is not bound; without a proof, a bearer token.
    plain = await refresh_with(http, client, body["refresh_token"], None)
    assert plain.status_code == 200 and plain.json()["token_type"] == "Bearer"
    assert "cnf" not in claims_of(plain.json()["access_token"])


async def test_a_proof_binds_a_client_credentials_token_and_pyjwt_proofs_work(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    for prover in (Prover(), rsa_prover()):
        response = await machine_token(http, client, {"DPoP": prover.pyjwt_proof("POST", TOKEN_URL)})
        assert response.status_code == 200, response.text
        assert response.json()["token_type"] == "DPoP"
        assert claims_of(response.json()["access_token"])["cnf"]["jkt"] == prover.jkt
    unbound = await machine_token(http, client, {})
    assert unbound.json()["token_type"] == "Bearer" and "cnf" not in claims_of(unbound.json()["access_token"])


async def test_a_client_registered_for_dpop_must_send_a_proof(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, dpop_bound_access_tokens=True)
    refused_without_token(await machine_token(http, client, {}))
    assert (await machine_token(http, client, {"DPoP": Prover().proof("POST", TOKEN_URL)})).status_code == 200


async def test_introspection_tells_the_binding(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    prover = Prover()
    token = (await machine_token(http, client, {"DPoP": prover.proof("POST", TOKEN_URL)})).json()["access_token"]
    body = await introspect(http, await resource_server(services), token)
    assert body["active"] is True and body["token_type"] == "DPoP" and body["cnf"] == {"jkt": prover.jkt}


async def test_discovery_advertises_the_proof_algorithms(http: httpx.AsyncClient) -> None:
    metadata = (await http.get("/.well-known/openid-configuration")).json()
    assert metadata["dpop_signing_alg_values_supported"] == ["ES256", "ES384", "RS256", "PS256", "EdDSA"]


# --- bad proofs at /token -----------------------------------------------------------------------------


def _sign_hs256(url: str) -> str:
    key = OctKey.generate_key(256)
    header = {"typ": "dpop+jwt", "alg": "HS256", "jwk": key.as_dict(private=False)}
    payload = {"jti": "x1", "htm": "POST", "htu": url, "iat": int(time.time())}
    return jws.serialize_compact(header, json.dumps(payload), key, algorithms=["HS256"])


def _unsigned(url: str) -> str:
    jwk = ECKey.generate_key("P-256").as_dict(private=False)
    header = base64.urlsafe_b64encode(json.dumps({"typ": "dpop+jwt", "alg": "none", "jwk": jwk}).encode()).rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(
        json.dumps({"jti": "x2", "htm": "POST", "htu": url, "iat": int(time.time())}).encode()
    ).rstrip(b"=").decode()
    return f"{header}.{payload}."


def _bad_signature(url: str) -> str:
    proof = Prover().proof("POST", url)
    other = Prover().proof("POST", url)
    return ".".join(proof.split(".")[:2] + other.split(".")[2:])


def _private_jwk(url: str) -> str:
    prover = Prover()
    return prover.proof("POST", url, header={"jwk": prover.key.as_dict(private=True)})


BAD_PROOFS: dict[str, Any] = {
    "malformed": lambda url: "not-a-jwt",
    "three dots": lambda url: "a.b.c.d",
    "oversized": lambda url: Prover().proof("POST", url, claims={"pad": "x" * 9000}),
    "wrong typ": lambda url: Prover().proof("POST", url, header={"typ": "JWT"}),
    "no typ": lambda url: Prover().proof("POST", url, header={"typ": None}),
    "alg none": _unsigned,
    "HS256": _sign_hs256,
    "private key in jwk": _private_jwk,
    "jwk of another type than alg": lambda url: rsa_prover().proof(
        "POST", url, header={"alg": "RS256", "jwk": ECKey.generate_key("P-256").as_dict(private=False)}
    ),
    "no jwk": lambda url: Prover().proof("POST", url, header={"jwk": None}),
    "bad signature": _bad_signature,
    "wrong htm": lambda url: Prover().proof("GET", url),
    "wrong htu": lambda url: Prover().proof("POST", "http://testserver/other"),
    "htu of another host": lambda url: Prover().proof("POST", "https://evil.example/token"),
    "no jti": lambda url: Prover().proof("POST", url, claims={"jti": None}),
    "iat too old": lambda url: Prover().proof("POST", url, iat=time.time() - 120),
    "iat in the future": lambda url: Prover().proof("POST", url, iat=time.time() + 60),
    "iat not a number": lambda url: Prover().proof("POST", url, claims={"iat": "now"}),
}


@pytest.mark.parametrize("case", sorted(BAD_PROOFS))
async def test_a_bad_proof_is_invalid_dpop_proof_and_gets_no_token(case: str, http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    refused_without_token(await machine_token(http, client, {"DPoP": BAD_PROOFS[case](TOKEN_URL)}))


async def test_two_dpop_headers_are_refused(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    prover = Prover()
    headers = [("DPoP", prover.proof("POST", TOKEN_URL)), ("DPoP", prover.proof("POST", TOKEN_URL))]
    refused_without_token(await machine_token(http, client, headers))


async def test_htu_compares_without_query_and_with_syntax_normalisation(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    for htu in ("HTTP://TESTSERVER:80/token", f"{TOKEN_URL}?x=1#frag"):
        assert (await machine_token(http, client, {"DPoP": Prover().proof("POST", htu)})).status_code == 200, htu


async def test_a_replayed_proof_is_refused(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    proof = Prover().proof("POST", TOKEN_URL)
    assert (await machine_token(http, client, {"DPoP": proof})).status_code == 200
    refused_without_token(await machine_token(http, client, {"DPoP": proof}))


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)  # PostgreSQL + Redis: the multi-instance setup
async def test_a_replayed_proof_is_refused_by_another_instance_sharing_the_cache(
    http: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    """Two instances (two apps, each its own cache client and pools) on the same database and cache."""
    client = await make_client(services)
    second = create_app(settings, passwords=fast_passwords())
    async with LifespanManager(second), httpx.AsyncClient(transport=httpx.ASGITransport(app=second), base_url=ISSUER) as other:
        proof = Prover().proof("POST", TOKEN_URL)
        assert (await machine_token(other, client, {"DPoP": proof})).status_code == 200
        refused_without_token(await machine_token(http, client, {"DPoP": proof}))
        # The nonce is the same on both instances (derived from the shared encryption key).
        assert second.state.services.dpop.nonce() == services.dpop.nonce()


# --- the server nonce ---------------------------------------------------------------------------------


async def test_nonce_flow(backend: str, database_url: str, tmp_root: Path) -> None:
    async with frozen_app(backend, database_url, tmp_root, AUTHSERVER_DPOP__REQUIRE_NONCE="true") as (http, services, clock):
        client = await make_client(services)
        prover = Prover(clock=lambda: clock.now().timestamp())
        first = await machine_token(http, client, {"DPoP": prover.proof("POST", TOKEN_URL)})
        refused_without_token(first, "use_dpop_nonce")
        nonce = first.headers["DPoP-Nonce"]
        wrong = await machine_token(http, client, {"DPoP": prover.proof("POST", TOKEN_URL, nonce="made-up")})
        refused_without_token(wrong, "use_dpop_nonce")
        ok = await machine_token(http, client, {"DPoP": prover.proof("POST", TOKEN_URL, nonce=nonce)})
        assert ok.status_code == 200, ok.text
        assert ok.json()["token_type"] == "DPoP" and ok.headers["DPoP-Nonce"]
        # A nonce lives one to two lifetimes, then the client is handed a new one.
        clock.advance(services.settings.dpop.nonce_lifetime * 2)
        stale = await machine_token(http, client, {"DPoP": prover.proof("POST", TOKEN_URL, nonce=nonce)})
        refused_without_token(stale, "use_dpop_nonce")
        assert stale.headers["DPoP-Nonce"] != nonce

        # At a resource the same requirement reads 401 with a DPoP challenge and the nonce.
        fresh = stale.headers["DPoP-Nonce"]
        token = ok.json()["access_token"]
        user_client = await make_client(services, client_type="public")
        user = await make_user(services)
        params, verifier = await authorize(http, user_client, user, scope=SCOPE)
        redeemed = await http.post("/token", data={
            "grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier, "client_id": user_client.client_id,
        }, headers={"DPoP": prover.proof("POST", TOKEN_URL, nonce=fresh)})
        assert redeemed.status_code == 200, redeemed.text
        token = redeemed.json()["access_token"]
        no_nonce = await http.get("/userinfo", headers=userinfo_headers(prover, token))
        assert no_nonce.status_code == 401 and no_nonce.json()["error"] == "use_dpop_nonce"
        assert no_nonce.headers["www-authenticate"].startswith("DPoP ") and no_nonce.headers["DPoP-Nonce"] == fresh
        with_nonce = await http.get("/userinfo", headers=userinfo_headers(prover, token, nonce=fresh))
        assert with_nonce.status_code == 200, with_nonce.text


# --- the resource side (the bearer gate) --------------------------------------------------------------


async def _bound_user_token(http: httpx.AsyncClient, services: Services, prover: Prover) -> str:
    client = await make_client(services, client_type="public")
    response = await code_tokens(http, services, client, prover)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def test_a_stolen_bound_token_is_refused_at_userinfo(http: httpx.AsyncClient, services: Services) -> None:
    prover = Prover()
    token = await _bound_user_token(http, services, prover)
    thief = Prover()
    cases = {
        "as Bearer": {"Authorization": f"Bearer {token}"},
        "thief's proof": {"Authorization": f"DPoP {token}", "DPoP": thief.proof("GET", USERINFO_URL, access_token=token)},
        "no proof": {"Authorization": f"DPoP {token}"},
        "ath of another token": {"Authorization": f"DPoP {token}", "DPoP": prover.proof("GET", USERINFO_URL, access_token="other")},
        "no ath": {"Authorization": f"DPoP {token}", "DPoP": prover.proof("GET", USERINFO_URL)},
        "wrong htm": {"Authorization": f"DPoP {token}", "DPoP": prover.proof("POST", USERINFO_URL, access_token=token)},
        "wrong htu": {"Authorization": f"DPoP {token}", "DPoP": prover.proof("GET", TOKEN_URL, access_token=token)},
    }
    for case, headers in cases.items():
        response = await http.get("/userinfo", headers=headers)
        assert response.status_code == 401, (case, response.text)
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('DPoP algs="ES256'), (case, challenge)
        assert response.json()["error"] in ("invalid_token", "invalid_dpop_proof"), case
        assert "sub" not in response.json()
    # A replayed proof is refused too.
    headers = userinfo_headers(prover, token)
    assert (await http.get("/userinfo", headers=headers)).status_code == 200
    replay = await http.get("/userinfo", headers=headers)
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_dpop_proof"


async def test_an_unbound_token_is_refused_with_the_dpop_scheme(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, client_type="public")
    body = (await code_tokens(http, services, client, None)).json()
    assert body["token_type"] == "Bearer"
    token = body["access_token"]
    prover = Prover()
    response = await http.get("/userinfo", headers=userinfo_headers(prover, token))
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"
    assert (await http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})).status_code == 200


async def test_a_missing_token_is_challenged_for_both_schemes(http: httpx.AsyncClient) -> None:
    response = await http.get("/userinfo")
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="authserver", DPoP algs="ES256 ')


# --- RFC 9449 §10: the code bound at /authorize -------------------------------------------------------


async def test_dpop_jkt_binds_the_authorization_code(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, client_type="public")
    prover = Prover()
    for presented in (Prover(), None):
        response = await code_tokens(http, services, client, presented, dpop_jkt=prover.jkt)
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant", response.text
    ok = await code_tokens(http, services, client, prover, dpop_jkt=prover.jkt)
    assert ok.status_code == 200, ok.text
    assert ok.json()["token_type"] == "DPoP"


async def test_a_malformed_dpop_jkt_is_refused_at_authorize(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, client_type="public")
    params = {
        "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT_URI, "scope": "openid",
        "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256",
        "dpop_jkt": "not a thumbprint!",
    }
    response = await http.get("/authorize", params=params)
    assert response.status_code in (302, 303)
    assert "error=invalid_request" in response.headers["location"]


def test_ath_helper_matches_the_rfc_example() -> None:
    # RFC 9449 §7.1 example: the access token and its ath.
    assert ath_of("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU") == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
