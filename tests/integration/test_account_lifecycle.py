"""Disabling, enabling and erasing a person (service functions and `authserver user …`): every token
inactive at once, credentials and personal data gone on erasure, the security log kept under a pseudonym."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from authserver import cli
from authserver.accounts.lifecycle import delete_account, disable_account, enable_account
from authserver.services import Services
from authserver.storage.errors import NotFound
from authserver.storage.sql.models import (
    Account,
    AuthorizationCode,
    BrowserSession,
    Consent,
    Grant,
    SecurityEvent,
)
from tests.conftest import environ_for
from tests.support.factories import authorize
from tests.support.lifecycle import frozen_app, is_active, issue, refresh, resource_server


async def _count(services: Services, model: type, **where: str) -> int:
    await services.events.flush()
    async with services.sessions() as session:
        statement = select(func.count()).select_from(model)
        for name, value in where.items():
            statement = statement.where(getattr(model, name) == value)
        return int(await session.scalar(statement) or 0)


async def test_disabling_makes_every_token_inactive_at_once_and_enabling_does_not_revive_them(backend: str, database_url: str, tmp_root: Path) -> None:
    async with frozen_app(backend, database_url, tmp_root) as (http, services, clock):
        issued = await issue(http, services)
        rs = await resource_server(services)
        await disable_account(services, issued.user.account_id, actor="test")
        assert not await is_active(http, rs, issued.access)
        assert (await http.get("/userinfo", headers={"Authorization": f"Bearer {issued.access}"})).status_code == 401
        assert (await refresh(http, issued.client, issued.refresh)).status_code == 400
        assert await _count(services, BrowserSession, account_id=issued.user.account_id) == 1
        assert (await services.browser_sessions.list_for_account(issued.user.account_id)) == []

        clock.advance(5)
        await enable_account(services, issued.user.account_id, actor="test")
        assert not await is_active(http, rs, issued.access)
        http.cookies.clear()
        again = await issue(http, services, client=issued.client, user=issued.user)
        assert await is_active(http, rs, again.access)
        with pytest.raises(NotFound):
            await disable_account(services, "no-such-account")
        with pytest.raises(NotFound):
            await enable_account(services, "no-such-account")


async def test_deletion_erases_the_person_and_keeps_a_pseudonymous_security_log(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    account_id = issued.user.account_id
    rs = await resource_server(services)
    await authorize(http, issued.client, issued.user)  # an unredeemed code too
    assert await _count(services, SecurityEvent, account_id=account_id) > 0
    pseudonym = await delete_account(services, account_id, actor="test")

    assert not await is_active(http, rs, issued.access)
    assert (await refresh(http, issued.client, issued.refresh)).status_code == 400
    for model in (Account, BrowserSession, Consent, Grant, AuthorizationCode):
        assert await _count(services, model, account_id=account_id) == 0, model
    assert await _count(services, SecurityEvent, account_id=account_id) == 0
    async with services.sessions() as session:
        events = (await session.scalars(select(SecurityEvent).where(SecurityEvent.account_id == pseudonym))).all()
    kinds = {e.event for e in events}
    assert {"login", "account_deleted"} <= kinds
    assert issued.user.username not in str([(e.details, e.account_id) for e in events])
    with pytest.raises(NotFound):
        await delete_account(services, account_id)


async def test_cli_disables_enables_deletes_and_purges(backend: str, database_url: str, tmp_root: Path, http: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    issued = await issue(http, services)
    rs = await resource_server(services)
    for name, value in environ_for(backend, database_url, tmp_root).items():
        monkeypatch.setenv(name, value)
    username = issued.user.username

    assert await asyncio.to_thread(cli.main, ["user", "disable", username, "--json"]) == 0
    assert not await is_active(http, rs, issued.access)
    assert await asyncio.to_thread(cli.main, ["user", "enable", username]) == 0
    account = await services.accounts.get(issued.user.account_id)
    assert account is not None and account.disabled_at is None
    with pytest.raises(SystemExit):
        await asyncio.to_thread(cli.main, ["user", "delete", username])
    assert await services.accounts.get(issued.user.account_id) is not None
    assert await asyncio.to_thread(cli.main, ["user", "delete", username, "--yes"]) == 0
    assert await services.accounts.get(issued.user.account_id) is None
    assert await asyncio.to_thread(cli.main, ["purge", "--json"]) == 0
    assert '"deny_list"' in capsys.readouterr().out
