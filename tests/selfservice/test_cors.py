"""CORS at /token, /revoke, /userinfo (and /introspect only when configured): origins from public
clients' redirect URIs or cors.allowed_origins, never "*", never with credentials, Vary: Origin; the
pages stay same-origin. (The browser proof is tests/browser/test_cors_browser.py.)"""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest

from authserver.cors import origin_of
from tests.support.apps import running_app
from tests.support.factories import make_client



@pytest.fixture
def spa() -> str:
    """An origin of this test's own (the database is shared by the session's tests)."""
    return f"https://alertas-{secrets.token_hex(4)}.cmipro.example"


def preflight(origin: str, method: str = "POST", headers: str = "") -> dict[str, str]:
    values = {"origin": origin, "access-control-request-method": method}
    if headers:
        values["access-control-request-headers"] = headers
    return values


@pytest.mark.parametrize(("uri", "origin"), [
    ("https://App.Example/cb?x=1", "https://app.example"),
    ("https://app.example:443/cb", "https://app.example"),
    ("http://127.0.0.1:8123/cb", "http://127.0.0.1:8123"),
    ("http://[::1]:9000/cb", "http://[::1]:9000"),
    ("com.cmipro.app:/oauth", None),
    ("https://app.example:99999/cb", None),
    ("not a url", None),
])
def test_origin_of_a_redirect_uri(uri: str, origin: str | None) -> None:
    assert origin_of(uri) == origin


async def test_registered_public_client_origin_is_allowed_at_the_machine_endpoints(database_url: str, tmp_root: Path, spa: str) -> None:
    async with running_app(database_url, tmp_root) as (app, services, http):
        await make_client(services, client_type="public", redirect_uris=[f"{spa}/callback", "com.cmipro.app:/cb"])
        await make_client(services, redirect_uris=["https://server-side.example/cb"])  # confidential: no CORS
        await app.state.cors.reload()
        for path, method in (("/token", "POST"), ("/revoke", "POST"), ("/userinfo", "GET")):
            answer = await http.options(path, headers=preflight(spa, method, "authorization, content-type, dpop"))
            assert answer.status_code == 204, path
            assert answer.headers["access-control-allow-origin"] == spa
            assert "access-control-allow-credentials" not in answer.headers
            assert method in answer.headers["access-control-allow-methods"]
            assert answer.headers["access-control-allow-headers"] == "Authorization, Content-Type, DPoP"
            assert answer.headers["access-control-max-age"] == "600"
            assert answer.headers["vary"] == "Origin"
        actual = await http.post("/token", data={"grant_type": "client_credentials"}, headers={"origin": spa})
        assert actual.status_code in (400, 401)
        assert actual.headers["access-control-allow-origin"] == spa and actual.headers["vary"] == "Origin"
        assert "access-control-allow-credentials" not in actual.headers
        assert "WWW-Authenticate" in actual.headers["access-control-expose-headers"]
        assert "DPoP-Nonce" in actual.headers["access-control-expose-headers"]  # RFC 9449 §8: the SPA reads the nonce


async def test_other_origins_get_no_allow_headers(database_url: str, tmp_root: Path, spa: str) -> None:
    async with running_app(database_url, tmp_root) as (app, services, http):
        await make_client(services, client_type="public", redirect_uris=[f"{spa}/callback"])
        await make_client(services, redirect_uris=["https://server-side.example/cb"])
        await app.state.cors.reload()
        for origin in ("https://evil.example", "https://server-side.example", "null", spa + ":8443", spa.replace("https", "http")):
            answer = await http.options("/token", headers=preflight(origin))
            assert answer.status_code == 403 and "access-control-allow-origin" not in answer.headers, origin
            assert answer.headers["vary"] == "Origin"
            actual = await http.post("/token", data={"grant_type": "client_credentials"}, headers={"origin": origin})
            assert "access-control-allow-origin" not in actual.headers and actual.headers["vary"] == "Origin"
        # Allowed origin, but a method or header the endpoint does not take.
        assert (await http.options("/token", headers=preflight(spa, "DELETE"))).status_code == 403
        assert (await http.options("/token", headers=preflight(spa, "POST", "x-custom"))).status_code == 403
        # Without Origin, OPTIONS is the endpoint's business, as before.
        plain = await http.options("/token")
        assert plain.status_code == 405 and "access-control-allow-origin" not in plain.headers


async def test_pages_stay_same_origin(database_url: str, tmp_root: Path, spa: str) -> None:
    """(Discovery and JWKS are public documents and keep their own "Access-Control-Allow-Origin: *".)"""
    async with running_app(database_url, tmp_root) as (app, services, http):
        await make_client(services, client_type="public", redirect_uris=[f"{spa}/callback"])
        await app.state.cors.reload()
        for path in ("/login", "/consent", "/logout", "/account", "/account/sessions", "/account/apps", "/account/password",
                     "/account/mfa", "/password/forgot", "/password/reset", "/authorize", "/mfa", "/introspect", "/register"):
            for response in (await http.get(path, headers={"origin": spa}), await http.options(path, headers=preflight(spa))):
                assert "access-control-allow-origin" not in response.headers, path
        assert (await http.options("/introspect", headers=preflight(spa))).status_code != 204


async def test_configured_origins_and_introspection_when_asked(database_url: str, tmp_root: Path, spa: str) -> None:
    env = {
        "AUTHSERVER_CORS__ALLOWED_ORIGINS": '["https://panel.cmipro.example"]',
        "AUTHSERVER_CORS__FROM_REDIRECT_URIS": "false", "AUTHSERVER_CORS__INTROSPECTION": "true",
    }
    async with running_app(database_url, tmp_root, **env) as (app, services, http):
        await make_client(services, client_type="public", redirect_uris=[f"{spa}/callback"])
        await app.state.cors.reload()
        assert (await http.options("/introspect", headers=preflight("https://panel.cmipro.example"))).status_code == 204
        assert (await http.options("/token", headers=preflight("https://panel.cmipro.example"))).status_code == 204
        assert (await http.options("/token", headers=preflight(spa))).status_code == 403


async def test_a_client_change_on_this_instance_reaches_the_origin_set_without_sql_per_request(database_url: str, tmp_root: Path, spa: str) -> None:
    async with running_app(database_url, tmp_root) as (app, services, http):
        cors = app.state.cors
        await cors.reload()
        assert (await http.options("/token", headers=preflight(spa))).status_code == 403
        assert cors.pending is None or cors.pending.done()
        client = await make_client(services, client_type="public", redirect_uris=[f"{spa}/callback"])
        # The request after the change schedules one background reload and is answered from the old set.
        first = await http.options("/token", headers=preflight(spa))
        assert first.status_code == 403 and cors.pending is not None
        await cors.pending
        assert (await http.options("/token", headers=preflight(spa))).status_code == 204
        # A fresh set is not reloaded again per request.
        task = cors.pending
        await http.options("/token", headers=preflight(spa))
        assert cors.pending is task
        await services.clients.set_disabled(client.client_id, True)
        await http.options("/token", headers=preflight(spa))
        assert cors.pending is not task
        await cors.pending
        assert (await http.options("/token", headers=preflight(spa))).status_code == 403


async def test_hostile_origin_headers_change_nothing(database_url: str, tmp_root: Path, spa: str) -> None:
    async with running_app(database_url, tmp_root) as (app, services, http):
        await make_client(services, client_type="public", redirect_uris=[f"{spa}/callback"])
        await app.state.cors.reload()
        for origin in ("*", "", spa + "/", spa + ", https://evil.example", "x" * 4000, spa.upper()):
            answer = await http.options("/token", headers=preflight(origin))
            assert answer.status_code == 403, origin
        twice = await http.request("OPTIONS", "/token", headers=[("origin", "https://evil.example"), ("origin", spa),
                                                                  ("access-control-request-method", "POST")])
        assert twice.status_code == 403
        raw = httpx.Headers([("origin", spa), ("access-control-request-method", "POST")])
        assert (await http.options("/token", headers=raw)).status_code == 204
