"""Security headers on every answer (RFC 9700 §4.16, RFC 6797) and request limits before parsing (RFC 6585)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from authserver.settings import Settings
from tests.abuse.conftest import login_page, running
from tests.support.factories import make_client

PAGES = [
    ("GET", "/"), ("GET", "/nowhere"), ("GET", "/static/style.css"), ("GET", "/static/missing.css"),
    ("GET", "/.well-known/openid-configuration"), ("GET", "/.well-known/oauth-authorization-server"), ("GET", "/jwks"),
    ("GET", "/authorize"), ("POST", "/authorize"), ("DELETE", "/authorize"), ("GET", "/authorize/resume?i=x"),
    ("GET", "/login"), ("GET", "/login?i=x"), ("POST", "/login"), ("PUT", "/login"), ("GET", "/consent"), ("POST", "/consent"),
    ("GET", "/token"), ("POST", "/token"), ("GET", "/userinfo"), ("POST", "/userinfo"), ("GET", "/account"),
    ("GET", "/healthz"), ("GET", "/readyz"),
]


def assert_security_headers(response: httpx.Response, *, https: bool) -> None:
    where = f"{response.request.method} {response.request.url.path} → {response.status_code}"
    csp = response.headers.get("content-security-policy", "")
    assert "frame-ancestors 'none'" in csp, where
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, where
    assert response.headers.get("x-frame-options") == "DENY", where
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("referrer-policy") == "no-referrer", where
    assert ("strict-transport-security" in response.headers) is https, where


async def test_headers_on_every_answer(make_settings: Callable[..., Settings]) -> None:
    for https in (False, True):
        env = {"AUTHSERVER_SERVER__ISSUER": "https://testserver"} if https else {}
        async with running(make_settings(env, login_per_ip=3)) as run:
            for method, path in PAGES:
                for accept in ("text/html", "application/json"):
                    response = await run.http.request(method, path, headers={"Accept": accept})
                    assert response.status_code < 500, (method, path, response.status_code)
                    assert_security_headers(response, https=https)
            # Rate-limited page, oversized body and oversized headers get them too.
            for _ in range(4):
                limited = await run.http.get("/login?i=x")
            assert limited.status_code == 429
            assert_security_headers(limited, https=https)
            big = await run.http.post("/token", content=b"a=" + b"x" * 70_000, headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert big.status_code == 413
            assert_security_headers(big, https=https)
            many = await run.http.get("/jwks", headers={f"X-Extra-{n}": "1" for n in range(120)})
            assert many.status_code == 431
            assert_security_headers(many, https=https)


async def test_no_store_on_sign_in_pages_and_token_answers(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings()) as run:
        await login_page(run.http)
        page = await run.http.get((await run.http.get("/account")).headers["location"])
        assert page.headers["cache-control"].startswith("no-store")
        client = await make_client(run.services, grant_types=["client_credentials"])
        ok = await run.http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret or ""))
        bad = await run.http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, "nope"))
        unsupported = await run.http.post("/token", data={"grant_type": "password"}, auth=(client.client_id, client.secret or ""))
        for response in (ok, bad, unsupported):
            assert response.headers["cache-control"] == "no-store", response.status_code


async def test_request_limits(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings(max_headers=30, max_header_bytes=4096)) as run:
        client = await make_client(run.services, grant_types=["client_credentials"])
        auth = (client.client_id, client.secret or "")
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        assert (await run.http.get("/jwks", headers={f"X-A{n}": "1" for n in range(31)})).status_code == 431
        assert (await run.http.get("/jwks", headers={"X-Big": "x" * 5000})).status_code == 431
        assert (await run.http.post("/token", content=b"grant_type=client_credentials&grant_type=client_credentials",
                                    headers=form, auth=auth)).status_code == 400
        too_many = "&".join(f"p{n}=1" for n in range(70))
        assert (await run.http.post("/token", content=f"grant_type=client_credentials&{too_many}".encode(), headers=form,
                                    auth=auth)).status_code == 400
        assert (await run.http.post("/token", json={"grant_type": "client_credentials"}, auth=auth)).status_code == 400
        assert (await run.http.post("/token", content=b"grant_type=client_credentials", auth=auth,
                                    headers={"Content-Type": "text/plain"})).status_code == 400
        assert (await run.http.post("/token", content=b"grant_type=client_credentials", headers=form, auth=auth)).status_code == 200
