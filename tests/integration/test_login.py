"""Sign-in page (ASVS 5 §6.3.8 no enumeration, §7.2.4 new session id, §3.3 cookie attributes, §3.5 CSRF)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from authserver.services import Services
from authserver.storage.sql.models import BrowserSession
from tests.support.apps import auth_params, location, running_app
from tests.support.factories import form_field, make_client, make_user, pkce_pair, sign_in

COOKIE = "authserver_session"


async def login_page(http: httpx.AsyncClient, services: Services) -> httpx.Response:
    client = await make_client(services)
    response = await http.get("/authorize", params=auth_params(client.client_id, pkce_pair()[1]))
    page = await http.get(location(response))
    assert page.status_code == 200
    return page


async def post_login(http: httpx.AsyncClient, page: httpx.Response, username: str, password: str, **override: str) -> httpx.Response:
    data = {"i": form_field(page.text, "i"), "csrf": form_field(page.text, "csrf"), "username": username, "password": password}
    data.update(override)
    return await http.post("/login", data={k: v for k, v in data.items() if v != ""})


def error_text(html: str) -> str:
    match = re.search(r'<p class="error" role="alert" id="login-error">([^<]*)</p>', html)
    assert match, "no error message"
    return match.group(1)


async def session_count(services: Services, account_id: str) -> int:
    async with services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(BrowserSession).where(BrowserSession.account_id == account_id)) or 0)


async def test_unknown_user_and_wrong_password_look_the_same(http: httpx.AsyncClient, services: Services) -> None:
    user = await make_user(services)
    disabled = await make_user(services)
    await services.accounts.set_disabled(disabled.account_id, True)
    page = await login_page(http, services)
    unknown = await post_login(http, page, "nobody-" + user.username, "whatever password")
    wrong = await post_login(http, page, user.username, "wrong password")
    assert unknown.status_code == wrong.status_code == 401
    assert error_text(unknown.text) == error_text(wrong.text)
    assert unknown.text.replace("nobody-" + user.username, user.username) == wrong.text
    assert "set-cookie" not in unknown.headers and "set-cookie" not in wrong.headers
    assert await session_count(services, user.account_id) == 0
    # a disabled account with the right password gets the very same answer
    locked = await post_login(http, page, disabled.username, disabled.password)
    assert locked.status_code == 401 and error_text(locked.text) == error_text(wrong.text)
    assert await session_count(services, disabled.account_id) == 0


async def test_a_new_session_id_on_every_sign_in(http: httpx.AsyncClient, services: Services) -> None:
    user = await make_user(services)
    planted = "ss_attacker-chosen-value"
    http.cookies.set(COOKIE, planted)
    page = await login_page(http, services)
    first = await post_login(http, page, user.username, user.password)
    assert first.status_code == 303
    first_value = first.cookies[COOKIE]
    assert first_value != planted
    # signing in again (prompt=login) replaces the session: new value, old one dead
    client = await make_client(services)
    response = await http.get("/authorize", params=auth_params(client.client_id, pkce_pair()[1], prompt="login"))
    second = await sign_in(http, location(response), user)
    second_value = second.cookies[COOKIE]
    assert second_value not in (first_value, planted)
    assert await services.browser_sessions.get(first_value) is None
    assert await services.browser_sessions.get(second_value) is not None


async def test_cookie_attributes_when_secure_is_relaxed(http: httpx.AsyncClient, services: Services) -> None:
    user = await make_user(services)
    response = await post_login(http, await login_page(http, services), user.username, user.password)
    header = response.headers["set-cookie"]
    assert header.startswith(f"{COOKIE}=")
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"httponly", "path"} <= attributes
    assert "samesite=lax" in header.lower()
    assert "secure" not in attributes


async def test_cookie_is_secure_and_host_prefixed_when_cookie_secure(database_url: str, tmp_root: Path) -> None:
    # https on the client side, so httpx sends the Secure cookies back (the ASGI app does not care)
    secure = {"AUTHSERVER_SERVER__COOKIE_SECURE": "true"}
    async with running_app(database_url, tmp_root, base_url="https://testserver", **secure) as (_, services, http):
        user = await make_user(services)
        response = await post_login(http, await login_page(http, services), user.username, user.password)
        header = response.headers["set-cookie"]
        assert header.startswith("__Host-authserver_session=")
        parts = [part.strip().lower() for part in header.split(";")]
        assert "secure" in parts and "httponly" in parts and "path=/" in parts and "samesite=lax" in parts
        assert not any(part.startswith("domain=") for part in parts)  # __Host- forbids Domain


@pytest.mark.parametrize("csrf", ["wrong-token", ""])
async def test_login_post_needs_the_csrf_token(http: httpx.AsyncClient, services: Services, csrf: str) -> None:
    user = await make_user(services)
    page = await login_page(http, services)
    response = await post_login(http, page, user.username, user.password, csrf=csrf)
    assert response.status_code == 403
    assert "set-cookie" not in response.headers and "location" not in response.headers
    assert await session_count(services, user.account_id) == 0
    assert (await post_login(http, page, user.username, user.password)).status_code == 303


async def test_login_without_a_live_interaction_is_an_error_page(http: httpx.AsyncClient, services: Services) -> None:
    user = await make_user(services)
    for data in ({"i": "nope", "csrf": "x", "username": user.username, "password": user.password}, {}):
        response = await http.post("/login", data=data)
        assert response.status_code == 400 and "set-cookie" not in response.headers
    assert (await http.get("/login")).status_code == 400
    assert await session_count(services, user.account_id) == 0


async def test_login_page_is_not_cached_and_not_framable(http: httpx.AsyncClient, services: Services) -> None:
    page = await login_page(http, services)
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"



async def test_login_form_only_works_in_the_browser_that_started_it(app: Starlette, http: httpx.AsyncClient, services: Services) -> None:
    """Login CSRF: an attacker's own interaction and CSRF token, replayed from the victim's browser, are refused."""
    attacker = await make_user(services)
    page = await login_page(http, services)  # the attacker's browser
    victim = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=str(http.base_url))
    async with victim:
        forged = await post_login(victim, page, attacker.username, attacker.password)
        assert forged.status_code == 403
        assert "set-cookie" not in forged.headers and "location" not in forged.headers
        victim.cookies.set("authserver_browser", "x" * 32)  # a guessed id does not help either
        assert (await post_login(victim, page, attacker.username, attacker.password)).status_code == 403
    assert await session_count(services, attacker.account_id) == 0
    assert (await post_login(http, page, attacker.username, attacker.password)).status_code == 303


async def test_browser_cookie_attributes(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    response = await http.get("/authorize", params=auth_params(client.client_id, pkce_pair()[1]))
    header = response.headers["set-cookie"]
    assert header.startswith("authserver_browser=")
    assert "httponly" in header.lower() and "samesite=lax" in header.lower()
    # the same browser keeps its id across flows (parallel tabs share it)
    again = await http.get("/authorize", params=auth_params(client.client_id, pkce_pair()[1]))
    assert again.cookies["authserver_browser"] == response.cookies["authserver_browser"]
