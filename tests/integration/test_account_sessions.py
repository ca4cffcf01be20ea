"""The account page's session list: end one session, or sign out everywhere (which also revokes every
refresh token of the person, offline ones included)."""

from __future__ import annotations

import re

import httpx
from starlette.applications import Starlette

from authserver.services import Services
from tests.conftest import ISSUER
from tests.support.lifecycle import is_active, issue, refresh, resource_server


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match
    return match.group(1)


def _handles(html: str) -> list[str]:
    return re.findall(r'data-session="([0-9a-f]+)"', html)


async def test_sessions_page_needs_a_session_and_is_linked_from_the_account_page(http: httpx.AsyncClient, services: Services) -> None:
    response = await http.get("/account/sessions")
    assert response.status_code == 303 and response.headers["location"].startswith("/login")
    await issue(http, services)
    assert 'href="/account/sessions"' in (await http.get("/account")).text
    assert (await http.post("/account/sessions", data={"action": "end_all"})).status_code == 403


async def test_ending_another_session_revokes_its_session_bound_tokens_only(app: Starlette, http: httpx.AsyncClient, services: Services) -> None:
    here = await issue(http, services, scope="openid read:levels")
    rs = await resource_server(services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as phone:
        there = await issue(phone, services, client=here.client, user=here.user, scope="openid read:levels")
        page = await http.get("/account/sessions")
        assert page.status_code == 200 and len(_handles(page.text)) == 2
        current = re.search(r'data-session="([0-9a-f]+)">\s*<strong>[^<]*</strong> · <em>', page.text)
        assert current
        other = next(h for h in _handles(page.text) if h != current.group(1))
        ended = await http.post("/account/sessions", data={"csrf": _csrf(page.text), "action": "end", "session": other})
        assert ended.status_code == 303
        assert await services.browser_sessions.get(phone.cookies.get("authserver_session")) is None
        assert not await is_active(http, rs, there.access)
        assert (await refresh(phone, there.client, there.refresh)).status_code == 400
        assert await is_active(http, rs, here.access)
        assert (await refresh(http, here.client, here.refresh)).status_code == 200
        assert len(_handles((await http.get("/account/sessions")).text)) == 1


async def test_sign_out_everywhere_ends_every_session_and_every_refresh_token(app: Starlette, http: httpx.AsyncClient, services: Services) -> None:
    here = await issue(http, services)  # offline_access: survives a single logout, not this
    rs = await resource_server(services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as phone:
        there = await issue(phone, services, client=here.client, user=here.user)
        cookies = [http.cookies.get("authserver_session"), phone.cookies.get("authserver_session")]
        page = await http.get("/account/sessions")
        bad = await http.post("/account/sessions", data={"csrf": "f" * 64, "action": "end_all"})
        assert bad.status_code == 403
        done = await http.post("/account/sessions", data={"csrf": _csrf(page.text), "action": "end_all"})
        assert done.status_code == 200 and 'id="signed-out"' in done.text
        for cookie in cookies:
            assert await services.browser_sessions.get(cookie) is None
        for browser, issued in ((http, here), (phone, there)):
            assert (await refresh(browser, issued.client, issued.refresh)).status_code == 400
            assert not await is_active(http, rs, issued.access)
