"""Pooled connections are tested before use only when they have been idle (database.pool_ping_after):
a connection the server lost while idle is replaced without failing the request that finds it."""

from __future__ import annotations

import asyncio
import dataclasses

import asyncpg
import pytest

from authserver.app import build_services
from authserver.settings import Settings
from tests.conftest import PG_ADMIN_DSN, fast_passwords


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_a_connection_killed_while_idle_is_replaced_before_use(settings: Settings, database_url: str) -> None:
    configured = dataclasses.replace(settings, database=dataclasses.replace(settings.database, pool_ping_after=0.2))
    services = build_services(configured, passwords=fast_passwords())
    try:
        assert await services.accounts.get("nobody") is None  # one pooled connection now exists
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'authserver'",
                database_url.rsplit("/", 1)[1],
            )
        finally:
            await admin.close()
        assert killed >= 1
        await asyncio.sleep(0.3)  # idle longer than pool_ping_after: the next checkout pings first
        assert await services.accounts.get("nobody") is None  # no error: the dead connection was replaced
    finally:
        await services.close()
