"""Fault injection for staging rehearsals: latency and errors in database and cache calls, 5xx at the edge.

Two ways in, both refused in production:

- the static ``[chaos]`` settings (settings.validate refuses them in production): fixed latency and error
  rates from start-up (:func:`inject_database_faults`, :class:`FaultyCache`);
- named **experiments** switched on and off at run time (admin API ``/admin/api/chaos``, ``authserver
  chaos``): ``latency`` (a random delay between ``min_ms`` and ``max_ms``), ``error_rate`` (a share of
  calls fails), ``dependency_down`` (every call fails) on the ``database`` or the ``cache`` (Redis, the
  rate limiter's included), and ``edge_5xx`` (a share of HTTP requests answered 503 by the edge
  middleware before anything else runs). They live in the ``server_flags`` row ``chaos``, so every
  instance applies them (each re-reads the row every second) and the CLI can switch them; each has an end
  (``duration_seconds``, at most an hour), so one left on stops by itself. :class:`Chaos` is built only
  when ``server.production`` is false: in production no hook is installed and the switches answer 403.

Database faults hook SQLAlchemy's ``before_cursor_execute`` (the async sleep runs through ``await_only``,
so the event loop is never blocked); cache faults wrap the Cache. Injected errors are the same exception
types a real outage raises, so they exercise the real 503 paths. The statements that read and write the
experiments themselves carry the execution option ``chaos_bypass`` and are never faulted, so a
``dependency_down`` of the database can still be switched off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import event, insert, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.util import await_only

from authserver.clock import Clock
from authserver.ratelimit import Decision, Limiter
from authserver.settings import ChaosSettings
from authserver.storage.cache import Cache
from authserver.storage.sql.models import ServerFlag

log = logging.getLogger("authserver.chaos")


class InjectedFault(Exception):
    """The cause attached to an injected error, so logs tell rehearsal from reality."""


def inject_database_faults(
    engine: AsyncEngine, *, latency_ms: int, error_rate: float, rng: random.Random | None = None
) -> Callable[[], Awaitable[None]]:
    """Hook fixed faults into the engine (no experiments); returns the same faults as a coroutine for the
    asyncpg fast path."""
    from authserver.clock import SystemClock

    static = ChaosSettings(database_latency_ms=latency_ms, database_error_rate=error_rate)
    return Chaos(None, SystemClock(), rng=rng).install(engine, static)


class FaultyCache:
    """A Cache whose calls are delayed and sometimes fail, in front of a real one: fixed faults, plus the
    running experiments of ``chaos`` if given."""

    def __init__(self, inner: Cache, *, latency_ms: int = 0, error_rate: float = 0.0, rng: random.Random | None = None,
                 chaos: Chaos | None = None) -> None:
        self._inner = inner
        self._latency = latency_ms / 1000
        self._error_rate = error_rate
        self._rng = rng or random.Random()
        self._chaos = chaos

    async def _fault(self) -> None:
        if self._latency:
            await asyncio.sleep(self._latency)
        if self._error_rate and self._rng.random() < self._error_rate:
            raise RedisConnectionError("injected cache fault")
        if self._chaos is not None and self._chaos.active:
            await self._chaos.fault("cache")

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


# --- run-time experiments ------------------------------------------------------------------------------

EXPERIMENTS = ("latency", "error_rate", "dependency_down", "edge_5xx")
TARGETS = ("database", "cache")
FLAG = "chaos"
BYPASS = {"chaos_bypass": True}
REFRESH_SECONDS = 1.0
MAX_DURATION = 3600


@dataclass(frozen=True)
class Experiment:
    name: str
    # "database" or "cache" (the edge for edge_5xx).
    target: str
    until: datetime
    min_ms: int = 0
    max_ms: int = 0
    rate: float = 0.0
    by: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"experiment": self.name, "target": self.target, "until": self.until.isoformat(), "min_ms": self.min_ms,
                "max_ms": self.max_ms, "rate": self.rate, "by": self.by}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Experiment:
        return cls(data["experiment"], data["target"], datetime.fromisoformat(data["until"]), int(data.get("min_ms", 0)),
                   int(data.get("max_ms", 0)), float(data.get("rate", 0.0)), str(data.get("by", "")))


class Chaos:
    """The experiments this instance applies: a copy of the ``chaos`` row, re-read every second."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession] | None, clock: Clock, *,
                 rng: random.Random | None = None) -> None:
        self._sessions = sessions  # None: fixed faults only (inject_database_faults)
        self._clock = clock
        self._rng = rng or random.Random()
        self.experiments: list[Experiment] = []

    @property
    def active(self) -> bool:
        return bool(self.experiments)

    def running(self) -> list[Experiment]:
        now = self._clock.now()
        return [e for e in self.experiments if e.until > now]

    def draw(self, target: str) -> tuple[float, bool]:
        """This call's injected delay (seconds) and whether it fails, for ``database`` or ``cache``."""
        delay, fail = 0.0, False
        for experiment in self.running():
            if experiment.target != target:
                continue
            if experiment.name == "latency":
                delay += self._rng.uniform(experiment.min_ms, experiment.max_ms) / 1000
            elif experiment.name == "error_rate":
                fail = fail or self._rng.random() < experiment.rate
            elif experiment.name == "dependency_down":
                fail = True
        return delay, fail

    async def fault(self, target: str) -> None:
        delay, fail = self.draw(target)
        if delay:
            await asyncio.sleep(delay)
        if fail:
            if target == "cache":
                raise RedisConnectionError("injected cache fault (chaos experiment)")
            raise OperationalError("chaos experiment", None, InjectedFault("injected database fault"))

    def edge_status(self) -> int | None:
        """503 for this HTTP request if an ``edge_5xx`` experiment picks it, else None."""
        for experiment in self.running():
            if experiment.name == "edge_5xx" and self._rng.random() < experiment.rate:
                return 503
        return None

    # -- the shared row ---------------------------------------------------------------------------------

    async def refresh(self) -> None:
        assert self._sessions is not None
        async with self._sessions() as session:
            row = (await session.scalars(select(ServerFlag).where(ServerFlag.name == FLAG).execution_options(**BYPASS))).first()
        stored = (row.value.get("experiments") or []) if row is not None else []
        now = self._clock.now()
        self.experiments = [e for e in (Experiment.from_dict(d) for d in stored) if e.until > now]

    async def start(self, experiment: Experiment) -> list[Experiment]:
        """Add (or replace: same name and target) an experiment, for every instance."""
        def change(current: list[Experiment]) -> list[Experiment]:
            kept = [e for e in current if (e.name, e.target) != (experiment.name, experiment.target)]
            return [*kept, experiment]

        return await self._write(change)

    async def stop(self, name: str | None = None) -> list[Experiment]:
        """End one experiment by name (every target), or all of them."""
        return await self._write(lambda current: [e for e in current if name is not None and e.name != name])

    async def _write(self, change: Callable[[list[Experiment]], list[Experiment]]) -> list[Experiment]:
        now = self._clock.now()
        assert self._sessions is not None
        async with self._sessions.begin() as session:
            row = (
                await session.scalars(
                    select(ServerFlag).where(ServerFlag.name == FLAG).with_for_update().execution_options(**BYPASS)
                )
            ).first()
            current = [Experiment.from_dict(d) for d in (row.value.get("experiments") or [])] if row is not None else []
            experiments = change([e for e in current if e.until > now])
            value = {"experiments": [e.as_dict() for e in experiments]}
            if row is None:
                await session.execute(insert(ServerFlag).values(name=FLAG, value=value, updated_at=now), execution_options=BYPASS)
            else:
                await session.execute(
                    update(ServerFlag).where(ServerFlag.name == FLAG).values(value=value, updated_at=now),
                    execution_options=BYPASS,
                )
        self.experiments = experiments
        return experiments

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Re-read the experiments every second until ``stop`` is set (the app's lifespan). A read is never
        cancelled half-way: a cancelled driver call can leave a connection (or a SQLite lock) behind."""
        while not stop.is_set():
            with contextlib.suppress(Exception):
                await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), REFRESH_SECONDS)

    # -- hooks --------------------------------------------------------------------------------------------

    def install(self, engine: AsyncEngine, static: ChaosSettings) -> Callable[[], Awaitable[None]]:
        """Hook the fixed faults of ``static`` and the running experiments into the engine; returns the same
        as a coroutine for the asyncpg fast path."""
        rng = self._rng
        latency, error_rate = static.database_latency_ms / 1000, static.database_error_rate

        def before_execute(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
            if context is not None and context.execution_options.get("chaos_bypass"):
                return
            delay, fail = self.draw("database") if self.experiments else (0.0, False)
            delay += latency
            if delay:
                await_only(asyncio.sleep(delay))
            if fail or (error_rate and rng.random() < error_rate):
                raise OperationalError(statement, parameters, InjectedFault("injected database fault"))

        async def before_statement() -> None:
            if latency:
                await asyncio.sleep(latency)
            if error_rate and rng.random() < error_rate:
                raise OperationalError("fast path", None, InjectedFault("injected database fault"))
            if self.experiments:
                await self.fault("database")

        event.listen(engine.sync_engine, "before_cursor_execute", before_execute)
        return before_statement


class FaultyLimiter:
    """The shared limiter behind the cache experiments: Redis faults reach rate limiting as they would."""

    def __init__(self, inner: Limiter, chaos: Chaos) -> None:
        self._inner = inner
        self._chaos = chaos

    async def hit(self, key: str, *, limit: int, window: float, now: float, cost: int = 1, lease: int = 1) -> Decision:
        if self._chaos.active:
            await self._chaos.fault("cache")
        return await self._inner.hit(key, limit=limit, window=window, now=now, cost=cost, lease=lease)

    def spend_lease(self, key: str, *, limit: int, window: float, now: float, cost: int = 1) -> Decision | None:
        spend = getattr(self._inner, "spend_lease", None)
        return spend(key, limit=limit, window=window, now=now, cost=cost) if spend is not None else None

    async def close(self) -> None:
        close = getattr(self._inner, "close", None)
        if close is not None:
            await close()


def new_experiment(name: str, target: str, *, duration: int, now: datetime, min_ms: int = 0, max_ms: int = 0,
                   rate: float = 0.0, by: str = "") -> Experiment:
    return Experiment(name, "edge" if name == "edge_5xx" else target, now + timedelta(seconds=duration), min_ms, max_ms,
                      rate if name in ("error_rate", "edge_5xx") else 0.0, by[:100])
