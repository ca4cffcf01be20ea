"""ID tokens (OIDC Core §2, §3.1.3.6) and JWT access tokens (RFC 9068 §2), verified against /jwks."""

from __future__ import annotations

import base64
import hashlib

import httpx
import jwt as pyjwt
import pytest

from authserver.services import Services
from authserver.tokens.opaque import digest
from tests.conftest import ISSUER
from tests.support.factories import authorize, make_client, make_user, redeem

AUDIENCE = "https://api.cmipro.example"


async def _jwks(http: httpx.AsyncClient) -> pyjwt.PyJWKSet:
    return pyjwt.PyJWKSet.from_dict((await http.get("/jwks")).json())


def _verify(token: str, keys: pyjwt.PyJWKSet, alg: str, **kwargs: object) -> dict[str, object]:
    header = pyjwt.get_unverified_header(token)
    assert header["alg"] == alg
    return pyjwt.decode(token, keys[header["kid"]].key, algorithms=[alg], issuer=ISSUER, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
async def test_id_token_and_access_token_claims(http: httpx.AsyncClient, services: Services, alg: str) -> None:
    client = await make_client(services, signing_alg=None if alg == "ES256" else alg)
    user = await make_user(services, roles=["premium_user"])
    params, verifier = await authorize(http, client, user, extra={"nonce": "n-0S6_WzA2Mj"})
    body = (await redeem(http, client, params["code"], verifier)).json()
    keys = await _jwks(http)

    id_header = pyjwt.get_unverified_header(body["id_token"])
    assert id_header["typ"] == "JWT" and id_header["kid"]
    id_token = _verify(body["id_token"], keys, alg, audience=client.client_id)
    assert id_token["sub"] == user.account_id
    assert id_token["aud"] == client.client_id
    assert id_token["azp"] == client.client_id
    assert id_token["nonce"] == "n-0S6_WzA2Mj"
    assert id_token["amr"] == ["pwd"]
    assert isinstance(id_token["auth_time"], int) and id_token["auth_time"] <= id_token["iat"] < id_token["exp"]  # type: ignore[operator]
    assert id_token["exp"] - id_token["iat"] == services.settings.tokens.id_token_ttl  # type: ignore[operator]
    # OIDC Core §3.1.3.6: at_hash is the left half of the hash of the access token, base64url
    digest = hashlib.sha256(body["access_token"].encode()).digest()  # both ES256 and RS256 use SHA-256
    assert id_token["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()

    at_header = pyjwt.get_unverified_header(body["access_token"])
    assert at_header["typ"] == "at+jwt" and at_header["kid"]
    access = _verify(body["access_token"], keys, alg, audience=AUDIENCE)
    for claim in ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "roles", "auth_time"):
        assert claim in access, claim
    assert access["sub"] == user.account_id
    assert access["client_id"] == client.client_id
    assert access["scope"] == "openid profile email offline_access read:levels"
    assert access["roles"] == ["premium_user"]
    assert "nonce" not in access


async def test_no_nonce_requested_means_no_nonce_claim(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    params, verifier = await authorize(http, client, user)
    id_token = pyjwt.decode((await redeem(http, client, params["code"], verifier)).json()["id_token"], options={"verify_signature": False})
    assert "nonce" not in id_token


async def test_without_openid_scope_there_is_no_id_token(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    params, verifier = await authorize(http, client, user, scope="read:levels")
    body = (await redeem(http, client, params["code"], verifier)).json()
    assert "id_token" not in body and body["scope"] == "read:levels"


async def test_refreshed_id_token_keeps_identity_and_auth_time(http: httpx.AsyncClient, services: Services) -> None:
    """OIDC Core §12.2: same iss, sub, aud and auth_time; no nonce."""
    client = await make_client(services)
    user = await make_user(services)
    params, verifier = await authorize(http, client, user, extra={"nonce": "abc"})
    first = (await redeem(http, client, params["code"], verifier)).json()
    refreshed = await http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}, auth=(client.client_id, client.secret)
    )
    assert refreshed.status_code == 200
    old = pyjwt.decode(first["id_token"], options={"verify_signature": False})
    new = pyjwt.decode(refreshed.json()["id_token"], options={"verify_signature": False})
    for claim in ("iss", "sub", "aud", "auth_time", "azp"):
        assert new[claim] == old[claim], claim
    assert "nonce" not in new


async def test_unsupported_client_signing_alg_is_refused_at_registration(services: Services) -> None:
    for alg in ("HS256", "none", "ES512"):
        with pytest.raises(ValueError, match="signing_alg"):
            await make_client(services, signing_alg=alg)


async def test_a_client_algorithm_without_an_active_key_is_503_and_consumes_nothing(
    http: httpx.AsyncClient, services: Services
) -> None:
    """keys.algorithms lacks EdDSA here: the token endpoint refuses before the grant touches the code."""
    assert not services.keys.can_sign("EdDSA")
    client = await make_client(services, signing_alg="EdDSA")
    user = await make_user(services)
    params, verifier = await authorize(http, client, user)
    refused = await redeem(http, client, params["code"], verifier)
    assert refused.status_code == 503
    assert refused.json()["error"] == "temporarily_unavailable"
    code = await services.tokens.get_code(digest(params["code"]))
    assert code is not None and code.consumed_at is None
