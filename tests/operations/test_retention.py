"""Retention: the scheduled purge, run by one of two instances on a database of the test's own, deletes
expired sign-in throttles and security events older than ``lifecycle.event_retention``, drops the IP
address and user agent from events older than ``lifecycle.event_personal_data_retention`` (the events
stay), and keeps everything younger. A FrozenClock shared by both instances drives it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from authserver.accounts.lockout import Policy
from authserver.clock import FrozenClock
from authserver.housekeeping import purge_once
from authserver.services import Services
from authserver.storage.sql.models import LoginThrottle, SecurityEvent
from tests.support.apps import running_app

DAY = 24 * 3600
ENV = {
    "AUTHSERVER_LIFECYCLE__PURGE_BATCH_SIZE": "2",
    "AUTHSERVER_LIFECYCLE__PURGE_PAUSE": "0",
    "AUTHSERVER_LIFECYCLE__EVENT_RETENTION": str(400 * DAY),
    "AUTHSERVER_LIFECYCLE__EVENT_PERSONAL_DATA_RETENTION": str(30 * DAY),
}


async def _events(services: Services) -> dict[str, tuple[str | None, str | None]]:
    await services.events.flush()
    async with services.sessions() as session:
        rows = (await session.scalars(select(SecurityEvent).where(SecurityEvent.event == "retention_test"))).all()
    return {row.outcome: (row.ip, row.user_agent) for row in rows}


async def _throttles(services: Services) -> set[str]:
    async with services.sessions() as session:
        return set((await session.scalars(select(LoginThrottle.key))).all())


async def _record(services: Services, outcome: str, count: int = 1) -> None:
    for n in range(count):
        await services.events.record("retention_test", f"{outcome}{n or ''}", ip="203.0.113.9", user_agent="Firefox", account_id="pseud-1")
    await services.events.flush()


async def test_purge_job_applies_retention_on_one_of_two_instances(own_database: str, tmp_path: Path) -> None:
    clock = FrozenClock()
    policy = Policy(threshold=100, window=3600, base=60, maximum=3600)
    locking = Policy(threshold=1, window=3600, base=10_000 * DAY, maximum=10_000 * DAY)
    async with running_app(own_database, tmp_path, clock=clock, **ENV) as (app_a, a, _h), \
            running_app(own_database, tmp_path, clock=clock, **ENV) as (app_b, b, _h2):
        schedulers = (app_a.state.scheduler, app_b.state.scheduler)
        await asyncio.gather(*(s.run_due() for s in schedulers))  # the purge job's row: due in one interval
        await _record(a, "ancient", count=5)  # five: several batches of two
        await a.lockout.failure("ip:198.51.100.1", policy)  # an idle throttle: goes
        await a.lockout.failure("ip:198.51.100.2", locking)  # still locked: stays
        clock.advance(370 * DAY)
        await _record(b, "old")
        clock.advance(30 * DAY + 60)
        await _record(a, "recent")
        await a.lockout.failure("ip:198.51.100.3", policy)  # touched just now: stays
        assert len(await _events(a)) == 7

        ran = await asyncio.gather(*(s.run_due() for s in schedulers))
        # one instance purged, the other did not (it may have run another due job, the secret rotation)
        assert sorted(jobs.count("purge") for jobs in ran) == [0, 1]

        events = await _events(b)
        assert set(events) == {"old", "recent"}  # older than 400 days: deleted
        assert events["old"] == (None, None)  # older than 30 days: no IP, no user agent, the event stays
        assert events["recent"] == ("203.0.113.9", "Firefox")
        async with a.sessions() as session:
            kept = (await session.scalars(select(SecurityEvent).where(SecurityEvent.outcome == "old"))).one()
        assert kept.account_id == "pseud-1"
        assert await _throttles(a) == {"ip:198.51.100.2", "ip:198.51.100.3"}


async def test_purge_report_counts_throttles_events_and_scrubbed_events(own_database: str, tmp_path: Path) -> None:
    clock = FrozenClock()
    async with running_app(own_database, tmp_path, clock=clock, **ENV) as (_app, services, _h):
        await _record(services, "a", count=3)
        await services.lockout.failure("ip:198.51.100.7", Policy(100, 3600, 60, 3600))
        clock.advance(31 * DAY)
        report = await purge_once(services)
        assert (report.events, report.events_scrubbed, report.throttles) == (0, 3, 1)
        clock.advance(370 * DAY)
        report = await purge_once(services)
        assert report.events >= 3 and report.events_scrubbed == 0  # ours and the start-up key events
        assert report.as_dict()["events"] == report.events
        assert await _events(services) == {}
