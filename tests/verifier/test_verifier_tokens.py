"""cmipro_verify against real tokens from a running server: what verifies, and every attack that must not
(RFC 8725 §2–3, RFC 9068 §4, SPEC JWK-07 / CVE-2024-37568)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import httpx
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives import serialization
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey

from cmipro_verify import InsufficientScope, InvalidToken, Verifier
from tests.verifier.conftest import AUDIENCE, LiveServer


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(token: str) -> tuple[dict[str, object], dict[str, object], str]:
    header, payload, signature = token.split(".")
    return (
        json.loads(base64.urlsafe_b64decode(header + "==")),
        json.loads(base64.urlsafe_b64decode(payload + "==")),
        signature,
    )


def assemble(header: dict[str, object], payload: dict[str, object], signature: str = "") -> str:
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.{signature}"


def verifier(live: LiveServer, **overrides: object) -> Verifier:
    values: dict[str, object] = {"issuer": live.issuer, "audience": AUDIENCE}
    values.update(overrides)
    return Verifier(**values)  # type: ignore[arg-type]


async def test_a_valid_token_verifies_sync_and_async_with_scope_helpers(live: LiveServer) -> None:
    client = await live.service_client()
    token = await live.token(client, "read:levels read:alerts")
    sync = verifier(live)
    claims = sync.verify(token)
    assert claims.subject == claims.client_id == client.client_id and not claims.is_user
    assert claims.scopes == {"read:levels", "read:alerts"} and claims["iss"] == live.issuer
    assert claims.require_scopes("read:levels") is claims
    with pytest.raises(InsufficientScope) as missing:
        claims.require_scopes("read:levels", "write:alerts")
    assert missing.value.status == 403 and 'scope="read:levels write:alerts"' in missing.value.www_authenticate()
    with pytest.raises(InsufficientScope):
        claims.require_any_role("admin")
    assert (await verifier(live).verify_async(token)).to_dict() == claims.to_dict()
    assert sync.verify_authorization(f"Bearer {token}").subject == client.client_id
    sync.close()


async def test_every_algorithm_the_server_signs_with_verifies(live: LiveServer) -> None:
    for alg in ("ES256", "RS256"):
        client = await live.service_client(signing_alg=alg)
        token = await live.token(client)
        assert pyjwt.get_unverified_header(token)["alg"] == alg
        assert verifier(live).verify(token).client_id == client.client_id


async def test_alg_none_is_rejected(live: LiveServer) -> None:
    header, payload, _ = segments(await live.token(await live.service_client()))
    with pytest.raises(InvalidToken, match="algorithm not allowed"):
        verifier(live).verify(assemble(header | {"alg": "none"}, payload))


async def test_hs256_signed_with_the_public_key_is_rejected(live: LiveServer) -> None:
    client = await live.service_client(signing_alg="RS256")
    header, payload, _ = segments(await live.token(client))
    async with httpx.AsyncClient() as http:
        published = (await http.get(f"{live.url}/jwks")).json()["keys"]
    jwk = next(k for k in published if k["kid"] == header["kid"])
    pem = pyjwt.PyJWK(jwk).key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for secret in (pem, json.dumps(jwk).encode()):
        forged_header = header | {"alg": "HS256"}
        signing_input = f"{b64(json.dumps(forged_header).encode())}.{b64(json.dumps(payload).encode())}"
        signature = b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
        with pytest.raises(InvalidToken, match="algorithm not allowed"):
            verifier(live).verify(f"{signing_input}.{signature}")
    with pytest.raises(ValueError):
        Verifier(issuer=live.issuer, audience=AUDIENCE, algorithms=["HS256", "RS256"])


async def test_an_expired_token_is_rejected_after_the_leeway(live: LiveServer) -> None:
    token = await live.token(await live.service_client())
    exp = pyjwt.decode(token, options={"verify_signature": False})["exp"]
    # A clock that far ahead would also find the revocation feed expired: the exp rule alone here.
    assert verifier(live, clock=lambda: exp + 59, leeway=60, revocation_check=False).verify(token)
    with pytest.raises(InvalidToken, match="expired"):
        verifier(live, clock=lambda: exp + 60, leeway=60, revocation_check=False).verify(token)


async def test_a_token_from_the_future_is_rejected(live: LiveServer) -> None:
    token = await live.token(await live.service_client())
    with pytest.raises(InvalidToken, match="future"):
        verifier(live, clock=lambda: time.time() - 600).verify(token)


async def test_wrong_audience_or_issuer_is_rejected(live: LiveServer) -> None:
    token = await live.token(await live.service_client())
    with pytest.raises(InvalidToken, match="audience"):
        verifier(live, audience="https://other-api.example").verify(token)
    assert verifier(live, audience=["https://other-api.example", AUDIENCE]).verify(token)
    with pytest.raises(InvalidToken, match="issuer"):
        verifier(live, issuer="https://evil.example", jwks_url=f"{live.url}/jwks").verify(token)


async def test_a_tampered_payload_is_rejected(live: LiveServer) -> None:
    header, payload, signature = segments(await live.token(await live.service_client()))
    with pytest.raises(InvalidToken, match="signature"):
        verifier(live).verify(assemble(header, payload | {"scope": "read:levels write:alerts"}, signature))


async def test_an_unknown_kid_fails_after_one_refetch_and_forged_kids_cannot_flood(live: LiveServer) -> None:
    good = await live.token(await live.service_client())
    v = verifier(live, refetch_cooldown=30)
    assert v.verify(good)
    assert v.jwks.fetches == 1
    attacker = ECKey.generate_key("P-256", private=True)
    for n in range(20):
        claims = {"iss": live.issuer, "aud": AUDIENCE, "sub": "x", "exp": int(time.time()) + 60, "iat": int(time.time())}
        forged = jose_jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": f"forged-{n}"}, claims, attacker)
        with pytest.raises(InvalidToken, match="unknown key id"):
            v.verify(forged)
    assert v.jwks.fetches == 2  # one refetch for the first unknown kid, then the cooldown holds
    assert v.verify(good)


async def test_a_kid_of_another_algorithm_and_a_wrong_typ_are_rejected(live: LiveServer) -> None:
    token = await live.token(await live.service_client(signing_alg="ES256"))
    header, payload, signature = segments(token)
    with pytest.raises(InvalidToken, match="does not match"):
        verifier(live).verify(assemble(header | {"alg": "RS256"}, payload, signature))
    with pytest.raises(InvalidToken, match="type"):
        verifier(live, token_type="JWT").verify(token)
    with pytest.raises(InvalidToken, match="type"):
        verifier(live).verify(assemble(header | {"typ": "JWT"}, payload, signature))


@pytest.mark.parametrize(
    "garbage",
    ["", "abc", "a.b", "a.b.c", "....", "eyJhbGciOiJFUzI1NiJ9.e30.", "x" * 20000, "e30.e30.e30", "W10.e30.e30"],
)
def test_malformed_tokens_are_invalid_token_never_a_crash(garbage: str) -> None:
    v = Verifier(issuer="https://issuer.example", audience=AUDIENCE, jwks_url="http://127.0.0.1:9/jwks")
    with pytest.raises(InvalidToken):
        v.verify(garbage)
