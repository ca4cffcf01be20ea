"""Interop: Authlib's AsyncOAuth2Client authenticates with private_key_jwt and client_secret_jwt (RFC 7523
§2.2, OIDC Core §9) using Authlib's own PrivateKeyJWT / ClientSecretJWT, at /token, /introspect and /revoke;
a jwks_uri is served by a real HTTP server on a loopback port, and a key rotation is picked up by refetching."""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey, RSAKey
from starlette.applications import Starlette

from authserver.services import Services
from tests.conftest import ISSUER
from tests.support.factories import make_client

with warnings.catch_warnings():
    # Authlib 1.9 prefers the httpx2 fork and warns when it falls back to httpx, which we use.
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from authlib.integrations.httpx_client import OAuthError as AuthlibOAuthError
    from authlib.oauth2.rfc7523 import ClientSecretJWT, PrivateKeyJWT

TOKEN_URL = f"{ISSUER}/token"


def machine_client(app: Starlette, client_id: str, secret_or_key: Any, auth: Any) -> AsyncOAuth2Client:
    return AsyncOAuth2Client(
        client_id, secret_or_key, token_endpoint_auth_method=auth, revocation_endpoint_auth_method=auth, transport=httpx.ASGITransport(app=app), base_url=ISSUER,
        scope="read:levels",
    )


def public_jwks(*keys: Any) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=False) for key in keys]}


class JwksServer:
    """A real HTTP server on 127.0.0.1 serving whatever JWK Set the test puts in ``document``."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                body = json.dumps(outer.document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


async def test_private_key_jwt_with_inline_jwks(app: Starlette, services: Services) -> None:
    key = RSAKey.generate_key(2048, {"kid": "rsa-1"})
    registered = await make_client(
        services, token_endpoint_auth_method="private_key_jwt", jwks=public_jwks(key), token_endpoint_auth_signing_alg="PS256",
    )
    assert registered.secret is None
    async with machine_client(app, registered.client_id, key, PrivateKeyJWT(TOKEN_URL, alg="PS256")) as client:
        token = await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
        assert token["token_type"] == "Bearer" and token["scope"] == "read:levels"
        # The same client authenticates at /revoke with a fresh assertion (aud: the issuer's token endpoint).
        revoked = await client.revoke_token(f"{ISSUER}/revoke", token=token["access_token"])
        assert revoked.status_code == 200


async def test_private_key_jwt_with_es256_and_the_issuer_as_audience(app: Starlette, services: Services) -> None:
    key = ECKey.generate_key("P-256", {"kid": "ec-1"})
    registered = await make_client(services, token_endpoint_auth_method="private_key_jwt", jwks=public_jwks(key), can_introspect=True)
    # FAPI 2.0 clients put the issuer in aud; Authlib lets the audience be set through token_endpoint.
    async with machine_client(app, registered.client_id, key, PrivateKeyJWT(ISSUER, alg="ES256")) as client:
        token = await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
        introspected = await client.introspect_token(f"{ISSUER}/introspect", token=token["access_token"])
        assert introspected.status_code == 200 and introspected.json()["active"] is True


async def test_client_secret_jwt(app: Starlette, services: Services) -> None:
    registered = await make_client(services, token_endpoint_auth_method="client_secret_jwt")
    assert registered.secret is not None
    async with machine_client(app, registered.client_id, registered.secret, ClientSecretJWT(TOKEN_URL, alg="HS256")) as client:
        token = await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
        assert token["access_token"]
    # The secret is kept encrypted, never in clear, beside its digest.
    stored = (await services.clients.refresh(registered.client_id))
    assert stored is not None and stored.secrets[0].secret_encrypted is not None
    assert registered.secret not in stored.secrets[0].secret_encrypted


async def test_client_secret_jwt_after_rotation(app: Starlette, services: Services) -> None:
    registered = await make_client(services, token_endpoint_auth_method="client_secret_jwt")
    new_secret = await services.clients.rotate_secret(registered.client_id, grace_seconds=60)
    for secret in (registered.secret, new_secret):
        async with machine_client(app, registered.client_id, secret, ClientSecretJWT(TOKEN_URL)) as client:
            assert (await client.fetch_token(TOKEN_URL, grant_type="client_credentials"))["access_token"]


async def test_private_key_jwt_with_jwks_uri_and_key_rotation(app: Starlette, services: Services, jwks_server: JwksServer) -> None:
    old, new = RSAKey.generate_key(2048, {"kid": "old"}), RSAKey.generate_key(2048, {"kid": "new"})
    jwks_server.document = public_jwks(old)
    registered = await make_client(services, token_endpoint_auth_method="private_key_jwt", jwks_uri=jwks_server.url)
    async with machine_client(app, registered.client_id, old, PrivateKeyJWT(TOKEN_URL, headers={"kid": "old"})) as client:
        await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
        await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert jwks_server.hits == 1  # cached
    # The client rotates: an assertion with the unknown kid refetches the set once.
    jwks_server.document = public_jwks(new)
    async with machine_client(app, registered.client_id, new, PrivateKeyJWT(TOKEN_URL, headers={"kid": "new"})) as client:
        await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
    assert jwks_server.hits == 2
    # Authlib sends no kid by default: the only key of the set is used.
    async with machine_client(app, registered.client_id, new, PrivateKeyJWT(TOKEN_URL)) as client:
        await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
    # Made-up kids do not turn into fetches: the refetch budget is spent.
    stranger = RSAKey.generate_key(2048, {"kid": "made-up"})
    async with machine_client(app, registered.client_id, stranger, PrivateKeyJWT(TOKEN_URL, headers={"kid": "made-up"})) as client:
        for _ in range(3):
            with pytest.raises(AuthlibOAuthError) as refused:
                await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
            assert refused.value.error == "invalid_client"
    assert jwks_server.hits == 2


async def test_an_unreachable_jwks_uri_is_invalid_client(app: Starlette, services: Services) -> None:
    # Nothing listens on this port: the fetch fails and the client is refused, not a 5xx.
    key = RSAKey.generate_key(2048, {"kid": "k"})
    registered = await make_client(services, token_endpoint_auth_method="private_key_jwt", jwks_uri="http://127.0.0.1:9/jwks")
    async with machine_client(app, registered.client_id, key, PrivateKeyJWT(TOKEN_URL)) as client:
        with pytest.raises(AuthlibOAuthError) as refused:
            await client.fetch_token(TOKEN_URL, grant_type="client_credentials")
        assert refused.value.error == "invalid_client"


class OddServer(JwksServer):
    """Answers a redirect, an oversized body or a non-JSON body, as the test sets ``mode``."""

    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                if outer.mode == "redirect":
                    self.send_response(302)
                    self.send_header("Location", outer.url.replace("jwks.json", "moved.json"))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = {"ok": json.dumps(outer.document).encode(), "huge": b" " * 200_000, "html": b"<html>"}[outer.mode]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server.RequestHandlerClass = Handler


async def test_the_jwks_fetcher_follows_no_redirect_and_bounds_the_answer() -> None:
    from authserver.clock import FrozenClock
    from authserver.keys.client_jwks import ClientKeys, ClientKeysUnavailable

    server = OddServer()
    server.thread.start()
    clock = FrozenClock()
    keys = ClientKeys(clock, timeout=3, max_bytes=64 * 1024, cache_ttl=300, refetch_interval=30, https_only=False)
    try:
        key = RSAKey.generate_key(2048, {"kid": "k"})
        server.document = public_jwks(key)
        for mode in ("redirect", "huge", "html"):
            server.mode = mode
            with pytest.raises(ClientKeysUnavailable):
                await keys.remote(server.url)
        assert server.hits == 3  # the redirect was not followed
        # In production only https is fetched: nothing leaves the server.
        strict = ClientKeys(clock, timeout=3, max_bytes=64 * 1024, cache_ttl=300, refetch_interval=30, https_only=True)
        with pytest.raises(ClientKeysUnavailable):
            await strict.remote(server.url)
        assert server.hits == 3
        # A good set is kept; when a later refetch fails, the previous keys keep answering.
        server.mode = "ok"
        first = await keys.remote(server.url)
        server.mode = "html"
        clock.advance(301)
        assert await keys.remote(server.url) is first
        await strict.close()
    finally:
        await keys.close()
        server.server.shutdown()
        server.server.server_close()
