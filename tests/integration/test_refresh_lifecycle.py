"""Refresh-token rotation with strict reuse detection (RFC 9700 §4.14.2), code reuse (RFC 6749 §4.1.2),
per-client idle and absolute lifetimes, and offline_access deciding whether a family outlives the session.

These run with strict rotation (grace period 0), which pins what an immediate reuse does; the grace
period is tests/integration/test_refresh_grace.py."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from authserver.services import Services
from authserver.settings import Settings
from authserver.storage.sql.models import SecurityEvent
from tests.support.factories import authorize as browser_authorize
from tests.support.factories import make_client, make_user, redeem
from tests.support.lifecycle import (
    frozen_app,
    is_active,
    issue,
    refresh,
    resource_server,
    strict_settings,
)


@pytest.fixture
def settings(backend: str, database_url: str, tmp_root: Path) -> Settings:
    return strict_settings(backend, database_url, tmp_root)


async def _events(services: Services, event: str, account_id: str) -> list[SecurityEvent]:
    await services.events.flush()
    async with services.sessions() as session:
        return list((await session.scalars(select(SecurityEvent).where(SecurityEvent.event == event, SecurityEvent.account_id == account_id))).all())


async def test_refresh_reuse_revokes_the_family_and_its_access_tokens_and_is_logged(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    rs = await resource_server(services)
    rotated = (await refresh(http, issued.client, issued.refresh)).json()
    assert await is_active(http, rs, rotated["access_token"])
    replay = await refresh(http, issued.client, issued.refresh)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert not await is_active(http, rs, rotated["access_token"])
    assert not await is_active(http, rs, issued.access)
    assert (await refresh(http, issued.client, rotated["refresh_token"])).status_code == 400
    events = await _events(services, "refresh_token_reuse", issued.user.account_id)
    assert len(events) == 1 and events[0].client_id == issued.client.client_id and events[0].details["grant_id"]


async def test_code_reuse_revokes_the_access_token_of_the_first_redemption(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    rs = await resource_server(services)
    params, verifier = await browser_authorize(http, client, user)
    first = (await redeem(http, client, params["code"], verifier)).json()
    assert await is_active(http, rs, first["access_token"])
    second = await redeem(http, client, params["code"], verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    assert not await is_active(http, rs, first["access_token"])
    assert len(await _events(services, "code_reuse", user.account_id)) == 1


async def test_idle_and_absolute_lifetimes_are_per_client(backend: str, database_url: str, tmp_root: Path) -> None:
    async with frozen_app(backend, database_url, tmp_root) as (http, services, clock):
        idle = await issue(http, services, refresh_token_idle_ttl=100, refresh_token_absolute_ttl=1000)
        clock.advance(99)
        token = (await refresh(http, idle.client, idle.refresh)).json()["refresh_token"]
        clock.advance(101)
        expired = await refresh(http, idle.client, token)
        assert expired.status_code == 400 and expired.json()["error"] == "invalid_grant"

        capped = await issue(http, services, refresh_token_idle_ttl=400, refresh_token_absolute_ttl=1000)
        token = capped.refresh
        for _ in range(3):  # 900 s in: each rotation is within the idle window
            clock.advance(300)
            response = await refresh(http, capped.client, token)
            assert response.status_code == 200, response.text
            token = response.json()["refresh_token"]
        clock.advance(101)  # past the absolute lifetime though within the idle one
        assert (await refresh(http, capped.client, token)).status_code == 400


async def test_without_offline_access_the_family_ends_with_the_session(http: httpx.AsyncClient, services: Services) -> None:
    bound = await issue(http, services, scope="openid profile read:levels")
    client = bound.client
    offline = await issue(http, services, client=client, user=bound.user)  # same browser session, offline_access
    rs = await resource_server(services)
    logout = await http.get("/logout", params={"id_token_hint": bound.tokens["id_token"]})
    assert logout.status_code == 200
    assert (await refresh(http, client, bound.refresh)).status_code == 400
    assert not await is_active(http, rs, bound.access)
    assert (await refresh(http, client, offline.refresh)).status_code == 200


async def test_code_from_an_ended_session_without_offline_access_is_refused(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    params, verifier = await browser_authorize(http, client, user, scope="openid read:levels")
    confirm = await http.get("/logout")
    assert confirm.status_code == 200
    csrf = re.search(r'name="csrf" value="([^"]+)"', confirm.text)
    assert csrf is not None
    assert (await http.post("/logout", data={"csrf": csrf.group(1), "confirm": "yes"})).status_code == 200
    response = await redeem(http, client, params["code"], verifier)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
