"""The plain-library recipes of docs/verifying-tokens.md (PyJWT, joserfc), run against a live server."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import jwt
import pytest
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tests.verifier.conftest import AUDIENCE, LiveServer


def pyjwt_recipe(issuer: str) -> Any:
    jwks = jwt.PyJWKClient(f"{issuer}/jwks", cache_jwk_set=True, lifespan=300, cooldown_duration=30)

    def verify(token: str) -> dict[str, Any]:
        if jwt.get_unverified_header(token).get("typ") != "at+jwt":
            raise jwt.InvalidTokenError("not an access token")
        key = jwks.get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token, key.key, algorithms=[key.algorithm_name], audience=AUDIENCE, issuer=issuer, leeway=60,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
        return claims

    return verify


def joserfc_recipe(issuer: str) -> Any:
    keys = KeySet.import_key_set(httpx.get(f"{issuer}/jwks").json())

    def verify(token: str) -> dict[str, Any]:
        decoded = jose_jwt.decode(token, keys, algorithms=["ES256", "RS256"])
        if decoded.header.get("typ") != "at+jwt":
            raise ValueError("not an access token")
        jose_jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": issuer}, aud={"essential": True, "value": AUDIENCE},
            exp={"essential": True}, leeway=60,
        ).validate(decoded.claims)
        return decoded.claims

    return verify


async def test_pyjwt_recipe(live: LiveServer) -> None:
    verify = pyjwt_recipe(live.issuer)
    for alg in ("ES256", "RS256"):
        token = await live.token(await live.service_client(signing_alg=alg))
        assert (await asyncio.to_thread(verify, token))["aud"] == AUDIENCE
    header, payload, signature = token.split(".")
    with pytest.raises(jwt.InvalidTokenError):
        await asyncio.to_thread(verify, f"{header}.{payload}x.{signature}")


async def test_joserfc_recipe(live: LiveServer) -> None:
    verify = await asyncio.to_thread(joserfc_recipe, live.issuer)
    token = await live.token(await live.service_client())
    assert verify(token)["iss"] == live.issuer
    header, payload, signature = token.split(".")
    with pytest.raises(JoseError):
        verify(f"{header}.{payload}x.{signature}")
