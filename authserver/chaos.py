"""Fault injection for staging rehearsals: latency and errors in database and cache calls.

Off by default and refused in production (settings.validate). Database faults hook SQLAlchemy's
``before_cursor_execute`` (the async sleep runs through ``await_only``, so the event loop is never blocked);
cache faults wrap the Cache. Injected errors are the same exception types a real outage raises, so they
exercise the real 503 paths.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import event
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only

from authserver.storage.cache import Cache


class InjectedFault(Exception):
    """The cause attached to an injected error, so logs tell rehearsal from reality."""


def inject_database_faults(
    engine: AsyncEngine, *, latency_ms: int, error_rate: float, rng: random.Random | None = None
) -> Callable[[], Awaitable[None]]:
    """Hook the faults into the engine; returns the same faults as a coroutine for the asyncpg fast path."""
    rng = rng or random.Random()

    def before_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if latency_ms:
            await_only(asyncio.sleep(latency_ms / 1000))
        if error_rate and rng.random() < error_rate:
            raise OperationalError(statement, parameters, InjectedFault("injected database fault"))

    async def before_statement() -> None:
        if latency_ms:
            await asyncio.sleep(latency_ms / 1000)
        if error_rate and rng.random() < error_rate:
            raise OperationalError("fast path", None, InjectedFault("injected database fault"))

    event.listen(engine.sync_engine, "before_cursor_execute", before_execute)
    return before_statement


class FaultyCache:
    """A Cache whose calls are delayed and sometimes fail, in front of a real one."""

    def __init__(self, inner: Cache, *, latency_ms: int, error_rate: float, rng: random.Random | None = None) -> None:
        self._inner = inner
        self._latency = latency_ms / 1000
        self._error_rate = error_rate
        self._rng = rng or random.Random()

    async def _fault(self) -> None:
        if self._latency:
            await asyncio.sleep(self._latency)
        if self._error_rate and self._rng.random() < self._error_rate:
            raise RedisConnectionError("injected cache fault")

    async def get(self, key: str) -> str | None:
        await self._fault()
        return await self._inner.get(key)

    async def get_many(self, keys: list[str]) -> list[str | None]:
        await self._fault()
        return await self._inner.get_many(keys)

    async def set(self, key: str, value: str, ttl: float) -> None:
        await self._fault()
        await self._inner.set(key, value, ttl)

    async def add(self, key: str, value: str, ttl: float) -> bool:
        await self._fault()
        return await self._inner.add(key, value, ttl)

    async def pop(self, key: str) -> str | None:
        await self._fault()
        return await self._inner.pop(key)

    async def delete(self, key: str) -> None:
        await self._fault()
        await self._inner.delete(key)

    async def incr(self, key: str, ttl: float) -> int:
        await self._fault()
        return await self._inner.incr(key, ttl)

    async def ping(self) -> bool:
        try:
            await self._fault()
        except RedisConnectionError:
            return False
        return await self._inner.ping()

    async def close(self) -> None:
        await self._inner.close()
