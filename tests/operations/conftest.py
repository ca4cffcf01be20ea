"""A database of the test's own (retention purges by date, which must not touch the shared one's rows)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from authserver.storage.sql.migrate import upgrade
from tests.conftest import create_pg_database, drop_pg_database, require_redis


@pytest.fixture(params=["postgres", "sqlite"])
async def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "postgres":
        await require_redis()
        name = await create_pg_database()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        try:
            await asyncio.to_thread(upgrade, url)
            yield url
        finally:
            await drop_pg_database(name)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / f'own-{secrets.token_hex(3)}.db'}"
        await asyncio.to_thread(upgrade, url)
        yield url
