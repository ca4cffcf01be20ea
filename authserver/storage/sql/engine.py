"""Engine and session factory for PostgreSQL (asyncpg) and SQLite (aiosqlite).

``sessions()`` is for reads and runs on AUTOCOMMIT connections: no BEGIN/ROLLBACK pair around every
lookup (two round trips each, and the pre-ping shrinks from three round trips to one). Writes use
``sessions.begin()``: one real transaction. A write attempted in a read session raises instead of
being committed statement by statement (docs/performance.md).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from authserver.settings import DatabaseSettings


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    if settings.url.startswith("sqlite"):
        engine = create_async_engine(settings.url, connect_args={"timeout": 15})
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_async_engine(
        settings.url,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_timeout=settings.pool_timeout,
        # The ping is ours (ping_idle_connections): only for connections idle longer than pool_ping_after.
        pool_pre_ping=settings.pool_pre_ping and settings.pool_ping_after <= 0,
        pool_recycle=1800,
        connect_args={
            "timeout": settings.pool_timeout,
            "command_timeout": max(settings.statement_timeout_ms / 1000 + 1, 2),
            "server_settings": {
                "application_name": "authserver",
                "statement_timeout": str(settings.statement_timeout_ms),
            },
        },
    )
    if settings.pool_pre_ping and settings.pool_ping_after > 0:
        ping_idle_connections(engine, idle_seconds=settings.pool_ping_after)
    return engine


def ping_idle_connections(engine: AsyncEngine, *, idle_seconds: float) -> None:
    """Pessimistic disconnect handling, minus the round trip for busy connections: a connection checked
    in less than ``idle_seconds`` ago is handed out as it is; an older one is pinged first, and a dead
    one is replaced (SQLAlchemy retries the checkout when the hook raises DisconnectionError). Under load
    nearly every checkout skips the ping; after an outage the idle pool is tested as with pre-ping."""
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(sync_engine, "checkout")
    def _maybe_ping(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.get("returned_at")
        if returned_at is not None and time.monotonic() - returned_at < idle_seconds:
            return
        try:
            alive = sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # noqa: BLE001 - any failure of the ping means: not this connection
            raise DisconnectionError(str(error)) from error
        if not alive:
            raise DisconnectionError("ping failed")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class ReadOnlyWrite(RuntimeError):
    """A write through ``sessions()``; use ``sessions.begin()``."""


class ReadSession(Session):
    """The sync session behind ``sessions()``: AUTOCOMMIT, reads only."""


@event.listens_for(ReadSession, "before_flush")
def _refuse_flush(session: Session, _context: UOWTransaction, _instances: Any) -> None:
    if session.new or session.dirty or session.deleted:
        raise ReadOnlyWrite("writes need `async with sessions.begin()`: sessions() reads in autocommit")


@event.listens_for(ReadSession, "do_orm_execute")
def _refuse_dml(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlyWrite("writes need `async with sessions.begin()`: sessions() reads in autocommit")


class Sessions(async_sessionmaker[AsyncSession]):
    """``sessions()`` → a read session on AUTOCOMMIT; ``sessions.begin()`` → one transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        super().__init__(
            engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False, sync_session_class=ReadSession
        )
        self._writer = async_sessionmaker(engine, expire_on_commit=False)

    def begin(self) -> Any:
        return self._writer.begin()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return Sessions(engine)
