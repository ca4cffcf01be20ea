"""The grace period of refresh rotation (tokens.refresh_token_grace_period; authserver/tokens/refresh_grace.py).

The same client presenting a just-rotated refresh token again within the period, while the successor is
unused, gets the very answer of the rotation (a response lost on a bad network); anything else that
presents a consumed token is reuse and revokes the family. Each test runs on PostgreSQL + Redis and on
SQLite + the in-process cache; the clock is a FrozenClock. Across three instances:
tests/reliability/test_refresh_grace_instances.py. With Authlib's client: tests/interop/test_authlib_client.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from authserver.errors import InvalidGrant
from authserver.grants.base import TokenBinding
from authserver.grants.refresh_token import RefreshTokenGrant
from authserver.services import Services
from authserver.tokens.opaque import digest
from authserver.tokens.refresh_grace import IN_FLIGHT_SECONDS, KEY_PREFIX
from tests.support.apps import running_app
from tests.support.factories import make_client
from tests.support.lifecycle import (
    STRICT_ROTATION,
    Issued,
    frozen_app,
    is_active,
    issue,
    live_refresh_tokens,
    refresh,
    resource_server,
    revoke,
)
from tests.support.proxy import FaultProxy

ROUNDS = int(os.environ.get("AUTHSERVER_RACE_ROUNDS", "6"))
POSTGRES = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


async def _grant_of(services: Services, refresh_token: str) -> str:
    found = await services.tokens.get_refresh_token(digest(refresh_token))
    assert found is not None
    return found[1].grant_id


async def _events(services: Services, event: str, client_id: str) -> list[dict[str, Any]]:
    return await services.events.query(event=event, client_id=client_id)


async def _revoked(http: httpx.AsyncClient, services: Services, issued: Issued, *successors: str) -> None:
    """The family is dead: its refresh tokens refused, its access tokens inactive."""
    rs = await resource_server(services)
    assert await live_refresh_tokens(services, await _grant_of(services, issued.refresh)) == 0
    for token in successors:
        assert (await refresh(http, issued.client, token)).status_code == 400
    assert not await is_active(http, rs, issued.access)


async def test_a_retry_within_the_grace_period_gets_the_same_answer_and_the_family_lives(
    backend: str, database_url: str, tmp_root: Path
) -> None:
    async with frozen_app(backend, database_url, tmp_root) as (http, services, clock):
        assert services.settings.tokens.refresh_token_grace_period == 30  # the shipped default
        issued = await issue(http, services)
        first = await refresh(http, issued.client, issued.refresh)
        assert first.status_code == 200, first.text
        lost = first.json()
        clock.advance(10)
        retry = await refresh(http, issued.client, issued.refresh)
        assert retry.status_code == 200, retry.text
        again = retry.json()
        for name in ("access_token", "refresh_token", "id_token", "scope", "token_type"):
            assert again[name] == lost[name], name
        assert again["expires_in"] == lost["expires_in"] - 10  # the same access token, 10 s older
        assert retry.headers["cache-control"] == "no-store"
        # The family lives on: one live refresh token, its access token active, the chain continues.
        grant_id = await _grant_of(services, issued.refresh)
        assert await live_refresh_tokens(services, grant_id) == 1
        assert await is_active(http, await resource_server(services), again["access_token"])
        assert (await refresh(http, issued.client, again["refresh_token"])).status_code == 200
        assert [e["details"]["grant_id"] for e in await _events(services, "refresh_token_retry", issued.client.client_id)] == [grant_id]
        assert await _events(services, "refresh_token_reuse", issued.client.client_id) == []
        # What the cache keeps is a ciphertext: neither token in clear.
        kept = await services.cache.get(KEY_PREFIX + digest(issued.refresh))
        assert kept is not None and kept.startswith("v1.")
        assert lost["refresh_token"] not in kept and lost["access_token"] not in kept


async def test_a_retry_after_the_grace_period_is_reuse(backend: str, database_url: str, tmp_root: Path) -> None:
    async with frozen_app(backend, database_url, tmp_root) as (http, services, clock):
        issued = await issue(http, services)
        successor = (await refresh(http, issued.client, issued.refresh)).json()
        clock.advance(services.settings.tokens.refresh_token_grace_period)  # the period is [0, 30 s)
        late = await refresh(http, issued.client, issued.refresh)
        assert late.status_code == 400 and late.json()["error"] == "invalid_grant"
        await _revoked(http, services, issued, successor["refresh_token"])
        assert not await is_active(http, await resource_server(services), successor["access_token"])
        assert len(await _events(services, "refresh_token_reuse", issued.client.client_id)) == 1


async def test_a_retry_after_the_successor_was_used_is_reuse(backend: str, database_url: str, tmp_root: Path) -> None:
    """Only the immediate predecessor of the live token is ever forgiven, never an older generation."""
    async with frozen_app(backend, database_url, tmp_root) as (http, services, clock):
        issued = await issue(http, services)
        second = (await refresh(http, issued.client, issued.refresh)).json()
        clock.advance(1)
        third = (await refresh(http, issued.client, second["refresh_token"])).json()
        clock.advance(1)
        stale = await refresh(http, issued.client, issued.refresh)
        assert stale.status_code == 400 and stale.json()["error"] == "invalid_grant"
        await _revoked(http, services, issued, third["refresh_token"], second["refresh_token"])


async def test_a_consumed_token_from_another_client_is_reuse(backend: str, database_url: str, tmp_root: Path) -> None:
    async with frozen_app(backend, database_url, tmp_root) as (http, services, clock):
        issued = await issue(http, services)
        successor = (await refresh(http, issued.client, issued.refresh)).json()
        other = await make_client(services)
        clock.advance(1)
        stolen = await refresh(http, other, issued.refresh)
        assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
        await _revoked(http, services, issued, successor["refresh_token"])
        [event] = await _events(services, "refresh_token_reuse", other.client_id)
        assert event["details"]["token_client_id"] == issued.client.client_id
        # A live token of another client is only refused (RFC 6749 §10.4): nothing changes.
        http.cookies.clear()
        live = await issue(http, services)
        assert (await refresh(http, other, live.refresh)).status_code == 400
        assert (await refresh(http, live.client, live.refresh)).status_code == 200


async def test_a_retry_asking_for_another_scope_is_reuse(backend: str, database_url: str, tmp_root: Path) -> None:
    async with frozen_app(backend, database_url, tmp_root) as (http, services, _):
        issued = await issue(http, services)
        narrowed = await refresh_with(http, issued, scope="read:levels")
        assert narrowed.status_code == 200 and narrowed.json()["scope"] == "read:levels"
        assert (await refresh_with(http, issued, scope="read:levels openid")).status_code == 400
        await _revoked(http, services, issued, narrowed.json()["refresh_token"])

        # The same narrowing again is forgiven (scope order does not matter, RFC 6749 §3.3).
        http.cookies.clear()
        issued = await issue(http, services)
        narrowed = await refresh_with(http, issued, scope="openid read:levels")
        repeated = await refresh_with(http, issued, scope="read:levels openid")
        assert repeated.status_code == 200 and repeated.json() == narrowed.json()


async def refresh_with(http: httpx.AsyncClient, issued: Issued, **extra: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": issued.refresh, **extra}
    return await http.post("/token", data=data, auth=(issued.client.client_id, str(issued.client.secret)))


async def test_grace_period_zero_is_strict_rotation(backend: str, database_url: str, tmp_root: Path) -> None:
    async with frozen_app(backend, database_url, tmp_root, **STRICT_ROTATION) as (http, services, _):
        issued = await issue(http, services)
        successor = (await refresh(http, issued.client, issued.refresh)).json()
        assert await services.cache.get(KEY_PREFIX + digest(issued.refresh)) is None  # nothing kept
        replay = await refresh(http, issued.client, issued.refresh)
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        await _revoked(http, services, issued, successor["refresh_token"])


async def test_parallel_duplicates_inside_the_grace_period_share_one_answer(http: httpx.AsyncClient, services: Services) -> None:
    """SPEC R-07 with a grace period: one rotation, every duplicate gets its answer, the family lives."""
    client = await make_client(services)
    rs = await resource_server(services)
    for _ in range(ROUNDS):
        issued = await issue(http, services, client=client)
        responses = await asyncio.gather(*(refresh(http, client, issued.refresh) for _ in range(10)))
        assert [r.status_code for r in responses] == [200] * 10, [r.text for r in responses]
        pairs = {(r.json()["access_token"], r.json()["refresh_token"]) for r in responses}
        assert len(pairs) == 1
        access, successor = pairs.pop()
        grant_id = await _grant_of(services, issued.refresh)
        assert await live_refresh_tokens(services, grant_id) == 1  # one rotation: never a fork
        assert await is_active(http, rs, access)
        assert (await refresh(http, client, successor)).status_code == 200


@pytest.mark.parametrize(
    ("bound", "other"),
    [
        (TokenBinding(jkt="key-one"), TokenBinding(jkt="key-two")),
        (TokenBinding(jkt="key-one"), None),
        (TokenBinding(x5t_s256="cert-one"), TokenBinding(x5t_s256="cert-two")),
        (None, TokenBinding(jkt="key-one")),
    ],
)
async def test_a_bound_retry_needs_the_same_key(
    http: httpx.AsyncClient, services: Services, bound: TokenBinding | None, other: TokenBinding | None
) -> None:
    """A sender-constrained family (DPoP RFC 9449, mTLS RFC 8705; the token endpoint passes the grant the
    request's binding): a retry is forgiven only with the key the rotation was bound to; another key is reuse."""
    grant = RefreshTokenGrant(services)
    issued = await issue(http, services)
    client = await services.clients.get(issued.client.client_id)
    assert client is not None
    params = {"refresh_token": issued.refresh}
    first = await grant.create_token_response(client, params, binding=bound)
    retried = await grant.create_token_response(client, params, binding=bound)
    assert {k: v for k, v in retried.items() if k != "expires_in"} == {k: v for k, v in first.items() if k != "expires_in"}
    assert retried["token_type"] == ("DPoP" if bound is not None and bound.jkt else "Bearer")
    with pytest.raises(InvalidGrant):
        await grant.create_token_response(client, params, binding=other)
    assert await live_refresh_tokens(services, await _grant_of(services, issued.refresh)) == 0


async def test_an_answer_kept_for_another_token_does_not_open(http: httpx.AsyncClient, services: Services) -> None:
    """The ciphertext is bound to its token's digest: copied under another consumed token, it is no answer."""
    one = await issue(http, services)
    http.cookies.clear()
    two = await issue(http, services)
    await refresh(http, one.client, one.refresh)
    await refresh(http, two.client, two.refresh)
    kept = await services.cache.get(KEY_PREFIX + digest(one.refresh))
    assert kept is not None
    await services.cache.set(KEY_PREFIX + digest(two.refresh), kept, 30)
    assert (await refresh(http, two.client, two.refresh)).status_code == 400
    assert await live_refresh_tokens(services, await _grant_of(services, two.refresh)) == 0


@contextlib.asynccontextmanager
async def _behind_redis_proxy(database_url: str, tmp_root: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Services, FaultProxy, Any]]:
    from authserver.clock import FrozenClock
    from tests.conftest import REDIS_URL

    proxy = await FaultProxy("127.0.0.1", int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])).start()
    clock = FrozenClock()
    try:
        async with running_app(
            database_url, tmp_root, clock=clock, AUTHSERVER_CACHE__URL=f"redis://127.0.0.1:{proxy.port}/0",
            AUTHSERVER_CACHE__TIMEOUT="0.3",
        ) as (_, services, http):
            yield http, services, proxy, clock
    finally:
        await proxy.stop()


@POSTGRES
async def test_cache_down_a_retry_is_503_and_changes_nothing(database_url: str, tmp_root: Path) -> None:
    """Pinned: a retry that needs the cache while it is down decides nothing (503, family untouched); once
    the cache is back the retry is forgiven. A rotation made while it is down still answers, without grace."""
    async with _behind_redis_proxy(database_url, tmp_root) as (http, services, proxy, clock):
        issued = await issue(http, services)
        lost = (await refresh(http, issued.client, issued.refresh)).json()
        grant_id = await _grant_of(services, issued.refresh)
        proxy.set_down(True)
        clock.advance(5)
        retry = await refresh(http, issued.client, issued.refresh)
        assert retry.status_code == 503 and retry.json()["error"] == "temporarily_unavailable", retry.text
        assert retry.headers["retry-after"]
        assert await live_refresh_tokens(services, grant_id) == 1
        proxy.set_down(False)
        again = await refresh(http, issued.client, issued.refresh)
        assert again.status_code == 200 and again.json()["refresh_token"] == lost["refresh_token"], again.text

        # Rotated while the cache is down: the client gets its tokens; the answer could not be kept, so a
        # retry of that rotation, once the cache is back, is reuse (the strict behaviour).
        proxy.set_down(True)
        rotated = await refresh(http, issued.client, lost["refresh_token"])
        assert rotated.status_code == 200, rotated.text
        proxy.set_down(False)
        clock.advance(IN_FLIGHT_SECONDS)  # long past any rotation still being answered: no wait
        replay = await refresh(http, issued.client, lost["refresh_token"])
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        assert await live_refresh_tokens(services, grant_id) == 0


async def test_a_retry_racing_a_revocation_leaves_nothing_alive(http: httpx.AsyncClient, services: Services) -> None:
    """SPEC R-09 with the grace period: once /revoke answered 200, what a forgiven retry handed out is dead too."""
    client = await make_client(services)
    rs = await resource_server(services)
    for round_number in range(ROUNDS * 2):
        issued = await issue(http, services, client=client)
        lost = (await refresh(http, client, issued.refresh)).json()
        racers = [refresh(http, client, issued.refresh), revoke(http, client, issued.refresh)]
        if round_number % 2:
            racers.reverse()
        results = await asyncio.gather(*racers)
        retried, revoked = results if round_number % 2 == 0 else results[::-1]
        assert revoked.status_code == 200
        assert retried.status_code in (200, 400), retried.text
        if retried.status_code == 200:
            assert retried.json()["refresh_token"] == lost["refresh_token"]
        assert await live_refresh_tokens(services, await _grant_of(services, issued.refresh)) == 0
        assert not await is_active(http, rs, lost["access_token"])
        assert (await refresh(http, client, lost["refresh_token"])).status_code == 400
