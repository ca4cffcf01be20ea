"""Single-runner background jobs (authserver.jobs): over two app instances on one database, each due job
runs on exactly one of them, never again before its interval, and a crashed holder's lease ends by itself.
Time is a FrozenClock shared by both instances: nothing sleeps."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from authserver.clock import FrozenClock
from authserver.jobs import Job, Scheduler
from tests.support.apps import running_app

HOUR = 3600


async def test_a_due_job_runs_on_exactly_one_of_two_instances(database_url: str, tmp_root: Path) -> None:
    clock = FrozenClock()
    runs: list[str] = []
    name = f"test-{secrets.token_hex(4)}"

    def scheduler(services, who: str) -> Scheduler:  # type: ignore[no-untyped-def]
        async def job() -> None:
            runs.append(who)

        return Scheduler(services.sessions, clock, [Job(name, HOUR, job)], holder=who)

    async with running_app(database_url, tmp_root, clock=clock) as (_, a, _h), \
            running_app(database_url, tmp_root, clock=clock) as (_, b, _h2):
        first, second = scheduler(a, "a"), scheduler(b, "b")
        await asyncio.gather(first.run_due(), second.run_due())
        assert runs == []  # the first run is one interval after the job appears
        for round_ in range(1, 4):
            clock.advance(HOUR)
            await asyncio.gather(first.run_due(), second.run_due())
            assert len(runs) == round_, runs  # one of them, not both
            await asyncio.gather(first.run_due(), second.run_due())
            clock.advance(HOUR / 2)
            await asyncio.gather(first.run_due(), second.run_due())
            clock.advance(-HOUR / 2)
            assert len(runs) == round_, runs  # not again within the interval
        status = {row["name"]: row for row in await first.status()}
        assert status[name]["holder"] in {"a", "b"} and not status[name]["running"]


async def test_a_crashed_holder_blocks_the_job_only_until_its_lease_ends(database_url: str, tmp_root: Path) -> None:
    clock = FrozenClock()
    runs: list[str] = []
    name = f"test-{secrets.token_hex(4)}"

    async def job() -> None:
        runs.append("ran")

    async with running_app(database_url, tmp_root, clock=clock) as (_, a, _h), \
            running_app(database_url, tmp_root, clock=clock) as (_, b, _h2):
        crashed = Scheduler(a.sessions, clock, [Job(name, HOUR, job)], holder="crashed")
        survivor = Scheduler(b.sessions, clock, [Job(name, HOUR, job)], holder="survivor")
        await survivor.run_due()
        clock.advance(HOUR)
        assert await crashed._claim(crashed.jobs[name])  # claimed, then the process died: no run, no release
        clock.advance(HOUR - 1)
        assert await survivor.run_due() == []  # the lease still holds
        clock.advance(1)
        assert await survivor.run_due() == [name]
        assert runs == ["ran"]


async def test_a_failing_job_neither_stops_the_others_nor_keeps_its_lease(database_url: str, tmp_root: Path) -> None:
    clock = FrozenClock()
    ran: list[str] = []
    broken, healthy = f"broken-{secrets.token_hex(4)}", f"healthy-{secrets.token_hex(4)}"

    async def fail() -> None:
        ran.append(broken)
        raise RuntimeError("boom")

    async def work() -> None:
        ran.append(healthy)

    async with running_app(database_url, tmp_root, clock=clock) as (_, services, _h):
        scheduler = Scheduler(services.sessions, clock, [Job(broken, 60, fail), Job(healthy, 60, work)])
        await scheduler.run_due()
        clock.advance(60)
        assert await scheduler.run_due() == [broken, healthy]
        clock.advance(60)
        assert await scheduler.run_due() == [broken, healthy]  # the failed run released its lease
        assert ran == [broken, healthy, broken, healthy]


async def test_the_app_schedules_the_purge_and_the_secret_rotation(database_url: str, tmp_root: Path) -> None:
    async with running_app(database_url, tmp_root) as (app, _s, _h):
        assert list(app.state.scheduler.jobs) == ["purge", "client_secret_rotation"]
        assert app.state.scheduler.jobs["client_secret_rotation"].interval == 3600
    async with running_app(
        database_url, tmp_root, AUTHSERVER_LIFECYCLE__PURGE_INTERVAL="0", AUTHSERVER_CLIENT_SECRETS__ROTATION_INTERVAL="0"
    ) as (app, _s, _h):
        assert app.state.scheduler.jobs == {}
