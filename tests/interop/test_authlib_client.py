"""Interop: Authlib's AsyncOAuth2Client (a client we did not write) drives code + PKCE S256, refresh and
client credentials through httpx's ASGITransport; tokens verified by joserfc and PyJWT against /jwks."""

from __future__ import annotations

import json
import warnings
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet
from starlette.applications import Starlette

from authserver.services import Services
from tests.conftest import ISSUER
from tests.support.apps import location, path_of
from tests.support.factories import REDIRECT_URI, make_client, make_user, sign_in

with warnings.catch_warnings():
    # Authlib 1.9 prefers the httpx2 fork and warns when it falls back to httpx, which we use.
    warnings.simplefilter("ignore")
    from authlib.common.security import generate_token
    from authlib.integrations.httpx_client import AsyncOAuth2Client

AUDIENCE = "https://api.cmipro.example"
TOKEN_URL = f"{ISSUER}/token"


def oauth_client(
    app: Starlette, client_id: str, client_secret: str | None, *, transport: httpx.AsyncBaseTransport | None = None, **kwargs: Any
) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id,
        client_secret,
        transport=transport or httpx.ASGITransport(app=app),
        base_url=ISSUER,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        **kwargs,
    )


async def browse(http: httpx.AsyncClient, url: str, user: Any) -> str:
    """The person's browser: open the authorization URL, sign in, come back with the callback URL."""
    response = await http.get(url.removeprefix(ISSUER))
    for _ in range(5):
        target = location(response)
        if target.startswith(REDIRECT_URI):
            return target
        response = await (sign_in(http, target, user) if path_of(target) == "/login" else http.get(target))
    raise AssertionError("too many redirects")


def verify_with_joserfc(token: str, jwks: dict[str, Any], *, audience: str) -> dict[str, Any]:
    decoded = jose_jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256", "RS256"])
    registry = jose_jwt.JWTClaimsRegistry(iss={"essential": True, "value": ISSUER}, aud={"essential": True, "value": audience},
                                          exp={"essential": True}, sub={"essential": True})
    registry.validate(decoded.claims)
    return dict(decoded.claims)


def verify_with_pyjwt(token: str, jwks: dict[str, Any], *, audience: str) -> dict[str, Any]:
    keys = pyjwt.PyJWKSet.from_dict(jwks)
    kid = pyjwt.get_unverified_header(token)["kid"]
    return pyjwt.decode(token, keys[kid].key, algorithms=["ES256", "RS256"], audience=audience, issuer=ISSUER,
                        options={"require": ["exp", "iat", "iss", "sub", "aud"]})


async def test_code_flow_with_pkce_then_refresh(app: Starlette, http: httpx.AsyncClient, services: Services) -> None:
    # Authlib does not form-urlencode Basic credentials (RFC 6749 §2.3.1); ids and secrets we issue only use
    # unreserved characters, so both readings agree (client ids are refused otherwise: see test_client_registry).
    registered = await make_client(services, client_id=f"interop.{generate_token(6)}~x")
    user = await make_user(services)
    jwks = (await http.get("/jwks")).json()
    async with oauth_client(app, registered.client_id, registered.secret, scope="openid profile read:levels") as client:
        verifier = generate_token(64)
        url, state = client.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier, nonce="n-1")
        assert "code_challenge_method=S256" in url
        callback = await browse(http, url, user)
        assert f"iss={ISSUER.replace(':', '%3A').replace('/', '%2F')}" in callback
        token = await client.fetch_token(TOKEN_URL, authorization_response=callback, code_verifier=verifier, state=state)
        assert token["token_type"] == "Bearer" and token["scope"] == "openid profile read:levels"
        for verify in (verify_with_joserfc, verify_with_pyjwt):
            access = verify(token["access_token"], jwks, audience=AUDIENCE)
            assert access["sub"] == user.account_id and access["client_id"] == registered.client_id
            id_token = verify(token["id_token"], jwks, audience=registered.client_id)
            assert id_token["nonce"] == "n-1"

        info = await client.get("/userinfo")  # Authlib sends the Bearer header itself
        assert info.status_code == 200 and info.json()["sub"] == user.account_id

        refreshed = await client.refresh_token(TOKEN_URL, refresh_token=token["refresh_token"])
        assert refreshed["refresh_token"] != token["refresh_token"]
        verify_with_pyjwt(refreshed["access_token"], jwks, audience=AUDIENCE)


async def test_public_client_with_pkce_and_no_secret(app: Starlette, http: httpx.AsyncClient, services: Services) -> None:
    registered = await make_client(services, client_type="public")
    user = await make_user(services)
    async with oauth_client(app, registered.client_id, None, scope="openid", token_endpoint_auth_method="none") as client:
        verifier = generate_token(48)
        url, state = client.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
        callback = await browse(http, url, user)
        token = await client.fetch_token(TOKEN_URL, authorization_response=callback, code_verifier=verifier, state=state)
        assert token["access_token"] and token["id_token"]


async def test_client_credentials_with_basic_and_post(app: Starlette, http: httpx.AsyncClient, services: Services) -> None:
    jwks = (await http.get("/jwks")).json()
    for method in ("client_secret_basic", "client_secret_post"):
        registered = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"],
                                       token_endpoint_auth_method=method, signing_alg="RS256")
        async with oauth_client(app, registered.client_id, registered.secret, scope="read:levels",
                                token_endpoint_auth_method=method) as client:
            token = await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
            assert "refresh_token" not in token
            assert pyjwt.get_unverified_header(token["access_token"])["alg"] == "RS256"
            assert verify_with_joserfc(token["access_token"], jwks, audience=AUDIENCE)["scope"] == "read:levels"
            assert verify_with_pyjwt(token["access_token"], jwks, audience=AUDIENCE)["sub"] == registered.client_id


class LosesAnswers(httpx.AsyncBaseTransport):
    """A bad mobile network: while ``losing``, the server gets and handles each request, the client never
    hears back (the connection drops on the way back). The lost answers are kept for the test to compare."""

    def __init__(self, app: Starlette) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.losing = False
        self.lost: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        if not self.losing:
            return response
        self.lost.append(json.loads(await response.aread()))
        raise httpx.ReadError("connection reset by peer", request=request)


async def test_a_refresh_whose_answer_was_lost_is_retried_with_the_same_token(
    app: Starlette, http: httpx.AsyncClient, services: Services
) -> None:
    """The grace period (docs/token-lifecycle.md) as Authlib's client lives it: the refresh's answer is lost,
    the app retries with the refresh token it still holds, and gets that same answer; the family lives on."""
    registered = await make_client(services)
    user = await make_user(services)
    network = LosesAnswers(app)
    async with oauth_client(app, registered.client_id, registered.secret, transport=network, scope="openid read:levels") as client:
        verifier = generate_token(64)
        url, state = client.create_authorization_url(f"{ISSUER}/authorize", code_verifier=verifier)
        callback = await browse(http, url, user)
        token = await client.fetch_token(TOKEN_URL, authorization_response=callback, code_verifier=verifier, state=state)

        network.losing = True
        with pytest.raises(httpx.ReadError):
            await client.refresh_token(TOKEN_URL, refresh_token=token["refresh_token"])
        network.losing = False
        [lost] = network.lost
        assert lost["refresh_token"] != token["refresh_token"]

        retried = await client.refresh_token(TOKEN_URL, refresh_token=token["refresh_token"])
        assert retried["refresh_token"] == lost["refresh_token"] and retried["access_token"] == lost["access_token"]
        info = await client.get("/userinfo")  # Authlib now holds the retried tokens
        assert info.status_code == 200 and info.json()["sub"] == user.account_id
        following = await client.refresh_token(TOKEN_URL, refresh_token=retried["refresh_token"])
        assert following["refresh_token"] not in (token["refresh_token"], retried["refresh_token"])
