"""Single-runner background jobs: named periodic jobs that run on one instance of the fleet at a time.

Every instance runs a :class:`Scheduler` with the same jobs. Coordination is a lease row per job in the
``job_leases`` table (PostgreSQL and SQLite alike), not a PostgreSQL advisory lock, because:

- an advisory lock lives as long as a database session, so it needs a dedicated connection held for the
  whole run, and it says nothing about *when* the job last ran: after a run, another instance would take
  the lock and run the job again at once;
- the lease row holds both: ``next_run_at`` (the job is due) and ``lease_until`` (someone is running it);
  time comes from the injected clock, so tests drive the schedule without sleeping, and it works on SQLite.

Claiming is one conditional ``UPDATE … WHERE next_run_at <= now AND (lease_until IS NULL OR lease_until
<= now)``: of the instances that try at once exactly one changes the row (PostgreSQL re-checks the
condition after the row lock; SQLite has one writer) and runs the job; the others see zero rows and skip
it. The winner moves ``next_run_at`` one interval on and holds the lease for at most one interval; when
it finishes it clears the lease. An instance that dies mid-run blocks the job until its lease ends, then
another takes over. Job failures are logged and never stop the scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import secrets
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.clock import Clock
from authserver.housekeeping import purge_once
from authserver.secret_rotation import SecretRotation
from authserver.services import Services
from authserver.storage.sql.models import JobLease

log = logging.getLogger("authserver.jobs")

# Seconds between two looks at the schedule (±10 % jitter); a job runs at most this late.
TICK = 30.0


@dataclass(frozen=True)
class Job:
    name: str
    # Seconds between runs; the first run is one interval after the job's row is created.
    interval: float
    run: Callable[[], Awaitable[Any]]


def holder_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


class Scheduler:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, jobs: list[Job], *,
                 holder: str | None = None, tick: float = TICK) -> None:
        self._sessions = sessions
        self._clock = clock
        self.jobs = {job.name: job for job in jobs}
        self.holder = holder or holder_id()
        self._tick = tick

    async def run_due(self) -> list[str]:
        """Run every job that is due and not held elsewhere; the names of the jobs this instance ran."""
        ran = []
        for job in self.jobs.values():
            try:
                if not await self._claim(job):
                    continue
            except Exception:
                log.exception("could not claim job %s; trying again at the next tick", job.name)
                continue
            ran.append(job.name)
            try:
                await job.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job %s failed; it runs again at its next interval", job.name)
            finally:
                await self._release(job)
        return ran

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Look at the schedule every ``tick`` seconds until ``stop`` is set (the app's lifespan); a job that
        is running when it is set finishes first (the lifespan waits a bounded time, then cancels)."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._tick * random.uniform(0.9, 1.1))
            if not stop.is_set():
                await self.run_due()

    async def _claim(self, job: Job) -> bool:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
            await session.execute(
                insert(JobLease)
                .values(name=job.name, next_run_at=now + timedelta(seconds=job.interval))
                .on_conflict_do_nothing(index_elements=[JobLease.name])
            )
            result = await session.execute(
                update(JobLease)
                .where(
                    JobLease.name == job.name,
                    JobLease.next_run_at <= now,
                    (JobLease.lease_until.is_(None)) | (JobLease.lease_until <= now),
                )
                .values(
                    holder=self.holder, lease_until=now + timedelta(seconds=job.interval),
                    next_run_at=now + timedelta(seconds=job.interval), last_run_at=now,
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def _release(self, job: Job) -> None:
        try:
            async with self._sessions.begin() as session:
                await session.execute(
                    update(JobLease).where(JobLease.name == job.name, JobLease.holder == self.holder).values(lease_until=None)
                )
        except Exception:  # noqa: BLE001 - the lease then ends by itself after one interval
            log.exception("could not release job %s", job.name)

    async def status(self) -> list[dict[str, Any]]:
        """Each job's row: when it is next due, who ran it last, whether a lease is held."""
        async with self._sessions() as session:
            rows = (await session.scalars(select(JobLease).where(JobLease.name.in_(list(self.jobs))))).all()
        return [
            {"name": r.name, "holder": r.holder, "next_run_at": r.next_run_at.isoformat(),
             "last_run_at": r.last_run_at.isoformat() if r.last_run_at else None, "running": r.lease_until is not None}
            for r in rows
        ]


def standard_jobs(services: Services) -> list[Job]:
    """The jobs every instance schedules (a job with interval 0 is off)."""
    jobs = []
    if services.settings.lifecycle.purge_interval:
        jobs.append(Job("purge", services.settings.lifecycle.purge_interval, lambda: purge_once(services)))
    secrets_settings = services.settings.client_secrets
    if secrets_settings.rotation_interval and secrets_settings.lifetime:
        rotation = SecretRotation(services)
        jobs.append(Job("client_secret_rotation", secrets_settings.rotation_interval, rotation.run))
    return jobs
