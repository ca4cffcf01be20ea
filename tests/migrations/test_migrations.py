"""Migrations: `upgrade head` on an empty PostgreSQL database and an empty SQLite file gives exactly the
schema of the models (autogenerate finds nothing to do), and downgrade/upgrade round-trips."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from authserver.storage.sql.migrate import alembic_config, upgrade
from authserver.storage.sql.models import metadata
from tests.conftest import create_pg_database, drop_pg_database


@pytest.fixture(params=["postgres", "sqlite"])
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "postgres":
        name = await create_pg_database()
        try:
            yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        finally:
            await drop_pg_database(name)
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"


def _state(connection: Connection) -> tuple[list[Any], str | None, set[str]]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, metadata), context.get_current_revision(), set(inspect(connection).get_table_names())


async def _inspect(url: str) -> tuple[list[Any], str | None, set[str]]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_state)
    finally:
        await engine.dispose()


async def test_upgrade_head_matches_the_models(empty_database: str) -> None:
    await asyncio.to_thread(upgrade, empty_database)
    diff, revision, tables = await _inspect(empty_database)
    assert diff == [], f"models and migrations differ: {diff}"
    heads = ScriptDirectory.from_config(alembic_config(empty_database)).get_heads()
    assert len(heads) == 1 and revision == heads[0]
    assert set(metadata.tables) <= tables


async def test_downgrade_base_then_upgrade_again(empty_database: str) -> None:
    config = alembic_config(empty_database)
    await asyncio.to_thread(upgrade, empty_database)
    await asyncio.to_thread(command.downgrade, config, "base")
    _, revision, tables = await _inspect(empty_database)
    assert revision is None and not (set(metadata.tables) & tables)
    await asyncio.to_thread(upgrade, empty_database)
    diff, _, _ = await _inspect(empty_database)
    assert diff == []
