"""The refresh grace period across three instances sharing PostgreSQL and Redis (SPEC R-07, R-12).

Three apps in one process, each with its own database pools, fast path and Redis client, sharing one
FrozenClock so the grace period can be crossed without sleeping. A round-robin load balancer without
stickiness sends a retry to any instance: what one instance rotated, another forgives or calls reuse.
(The strict policy across server processes: tests/reliability/test_multi_instance.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from authserver.clock import FrozenClock
from authserver.services import Services
from authserver.tokens.opaque import digest
from tests.support.apps import running_app
from tests.support.factories import AppClient, make_client, make_user
from tests.support.lifecycle import (
    Issued,
    is_active,
    issue,
    live_refresh_tokens,
    refresh,
    resource_server,
)

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
ROUNDS = int(os.environ.get("AUTHSERVER_RACE_ROUNDS", "6"))
GRACE = 30


@dataclass
class Instances:
    http: list[httpx.AsyncClient]
    services: list[Services]
    clock: FrozenClock


@pytest.fixture
async def instances(database_url: str, tmp_root: Path) -> AsyncIterator[Instances]:
    clock = FrozenClock()
    async with contextlib.AsyncExitStack() as stack:
        started = [
            await stack.enter_async_context(running_app(database_url, tmp_root, clock=clock)) for _ in range(3)
        ]
        assert all(s.settings.tokens.refresh_token_grace_period == GRACE for _, s, _ in started)
        yield Instances([h for _, _, h in started], [s for _, s, _ in started], clock)


async def _grant_of(services: Services, refresh_token: str) -> str:
    found = await services.tokens.get_refresh_token(digest(refresh_token))
    assert found is not None
    return found[1].grant_id


async def _issue(cluster: Instances, client: AppClient | None = None) -> Issued:
    http = cluster.http[0]
    http.cookies.clear()
    return await issue(http, cluster.services[0], client=client, user=await make_user(cluster.services[0]))


async def test_parallel_duplicates_on_three_instances_share_one_answer(instances: Instances) -> None:
    services = instances.services[0]
    client = await make_client(services)
    rs = await resource_server(services)
    for round_no in range(ROUNDS):
        issued = await _issue(instances, client)
        responses = await asyncio.gather(*(refresh(h, client, issued.refresh) for h in instances.http * 2))
        assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
        pairs = {(r.json()["access_token"], r.json()["refresh_token"]) for r in responses}
        assert len(pairs) == 1, "every duplicate gets the one rotation's answer"
        access, successor = pairs.pop()
        grant_id = await _grant_of(services, issued.refresh)
        assert await live_refresh_tokens(services, grant_id) == 1
        assert await is_active(instances.http[round_no % 3], rs, access)
        chained = await refresh(instances.http[(round_no + 1) % 3], client, successor)
        assert chained.status_code == 200, chained.text


async def test_a_retry_on_another_instance_within_the_period_then_after_it(instances: Instances) -> None:
    (a, b, c), clock = instances.http, instances.clock
    services = instances.services[0]
    rs = await resource_server(services)
    issued = await _issue(instances)
    lost = (await refresh(a, issued.client, issued.refresh)).json()
    clock.advance(GRACE - 1)
    retry = await refresh(b, issued.client, issued.refresh)
    assert retry.status_code == 200 and retry.json()["refresh_token"] == lost["refresh_token"], retry.text
    assert retry.json()["access_token"] == lost["access_token"] and retry.json()["expires_in"] == lost["expires_in"] - (GRACE - 1)
    clock.advance(1)  # the period is over: the same retry is reuse now, on any instance
    late = await refresh(c, issued.client, issued.refresh)
    assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
    assert await live_refresh_tokens(services, await _grant_of(services, issued.refresh)) == 0
    assert [await is_active(h, rs, lost["access_token"]) for h in (a, b)] == [False, False]
    assert (await refresh(a, issued.client, lost["refresh_token"])).status_code == 400


async def test_a_retry_after_the_successor_was_used_elsewhere_is_reuse(instances: Instances) -> None:
    (a, b, c), clock = instances.http, instances.clock
    services = instances.services[0]
    issued = await _issue(instances)
    second = (await refresh(a, issued.client, issued.refresh)).json()
    third = (await refresh(b, issued.client, second["refresh_token"])).json()
    clock.advance(1)
    stale = await refresh(c, issued.client, issued.refresh)
    assert stale.status_code == 400 and stale.json()["error"] == "invalid_grant"
    assert await live_refresh_tokens(services, await _grant_of(services, issued.refresh)) == 0
    assert (await refresh(a, issued.client, third["refresh_token"])).status_code == 400


async def test_a_consumed_token_from_another_client_on_another_instance_is_reuse(instances: Instances) -> None:
    (a, b, c), clock = instances.http, instances.clock
    services = instances.services[0]
    issued = await _issue(instances)
    successor = (await refresh(a, issued.client, issued.refresh)).json()
    other = await make_client(services)
    clock.advance(1)
    stolen = await refresh(b, other, issued.refresh)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert await live_refresh_tokens(services, await _grant_of(services, issued.refresh)) == 0
    assert (await refresh(c, issued.client, successor["refresh_token"])).status_code == 400


async def test_a_duplicate_waits_for_a_slow_winner_on_another_instance(database_url: str, tmp_root: Path) -> None:
    """The winner keeps its answer only after its rotation committed: a duplicate arriving in between (here
    the winner's Redis is slow) waits for that answer instead of calling the rotation reuse."""
    from tests.conftest import REDIS_URL
    from tests.support.proxy import FaultProxy

    proxy = await FaultProxy("127.0.0.1", int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])).start()
    clock = FrozenClock()
    try:
        async with (
            running_app(database_url, tmp_root, clock=clock, AUTHSERVER_CACHE__URL=f"redis://127.0.0.1:{proxy.port}/0") as (_, _, a),
            running_app(database_url, tmp_root, clock=clock) as (_, services, b),
        ):
            issued = await issue(b, services)
            await refresh(a, issued.client, issued.refresh)  # warm the slow instance's pools and rate lease
            issued = await issue(b, services, client=issued.client, user=issued.user)
            proxy.latency = 0.2  # every Redis exchange of instance A now takes about 0.4 s
            first = asyncio.create_task(refresh(a, issued.client, issued.refresh))
            for _ in range(500):  # until A's rotation is committed (A is still storing its answer)
                found = await services.tokens.get_refresh_token(digest(issued.refresh))
                assert found is not None
                if found[0].consumed_at is not None:
                    break
                await asyncio.sleep(0.01)
            assert not first.done()
            duplicate = await refresh(b, issued.client, issued.refresh)
            winner = await first
            assert winner.status_code == 200, winner.text
            assert duplicate.status_code == 200, duplicate.text
            assert duplicate.json()["refresh_token"] == winner.json()["refresh_token"]
            assert await live_refresh_tokens(services, found[1].grant_id) == 1
    finally:
        await proxy.stop()
