"""Rate limits (RFC 6585 §4): the sliding window on Redis and in memory, and 429s at every guarded endpoint."""

from __future__ import annotations

import secrets
from collections.abc import Callable

import pytest

from authserver.ratelimit import Limiter, MemoryLimiter, RedisLimiter
from authserver.settings import Settings
from tests.abuse.conftest import login_page, random_ip, running
from tests.conftest import REDIS_URL, RUN_ID
from tests.support.factories import authorize, make_client, make_user, redeem


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> Limiter:  # type: ignore[misc]
    if request.param == "memory":
        yield MemoryLimiter()
        return
    redis = RedisLimiter(REDIS_URL, key_prefix=f"authserver-test-{RUN_ID}:", timeout=1.0)
    yield redis
    await redis.close()


async def test_sliding_window(limiter: Limiter) -> None:
    key = secrets.token_hex(8)
    start = 1_000_000 * 60.0  # the start of a window
    decisions = [await limiter.hit(key, limit=5, window=60, now=start + 10) for _ in range(6)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    # Denied in the first window: wait until its end, then until enough of it slid out.
    assert decisions[-1].retry_after == 50 + 12
    assert decisions[-1].headers()["Retry-After"] == "62"
    # Half-way through the next window half of the previous count still weighs: 2.5 + new hits ≤ 5.
    later = [await limiter.hit(key, limit=5, window=60, now=start + 90) for _ in range(3)]
    assert [d.allowed for d in later] == [True, True, False]
    # A peek (cost 0) counts nothing.
    assert (await limiter.hit(key, limit=5, window=60, now=start + 90, cost=0)).allowed is False
    assert (await limiter.hit(key, limit=5, window=60, now=start + 300)).allowed is True


async def test_keys_are_independent(limiter: Limiter) -> None:
    a, b = secrets.token_hex(8), secrets.token_hex(8)
    assert (await limiter.hit(a, limit=1, window=60, now=120.0)).allowed
    assert not (await limiter.hit(a, limit=1, window=60, now=121.0)).allowed
    assert (await limiter.hit(b, limit=1, window=60, now=121.0)).allowed


async def test_leases_share_one_budget_between_instances_with_few_round_trips() -> None:
    """Two instances leasing chunks of one shared budget: together never more than the limit, at most one
    unspent lease each below it, and one Redis round trip serves a whole lease."""
    from redis.asyncio import Redis

    prefix = f"authserver-test-{RUN_ID}-lease-{secrets.token_hex(4)}:"
    a, b = (RedisLimiter(REDIS_URL, key_prefix=prefix, timeout=1.0) for _ in range(2))
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    start = 2_000_000 * 60.0
    try:
        assert (await a.hit("k", limit=320, window=60, now=start + 1, lease=10)).allowed
        counter = f"{prefix}rl:k|60:{int(start // 60)}"
        assert await redis.get(counter) == "10"  # a whole lease counted at once
        for _ in range(9):
            assert (await a.hit("k", limit=320, window=60, now=start + 1, lease=10)).allowed
        assert await redis.get(counter) == "10"  # ... and spent without asking Redis again
        allowed = 10
        for turn in range(400):
            limiter = a if turn % 2 else b
            allowed += (await limiter.hit("k", limit=320, window=60, now=start + 2, lease=10)).allowed
        assert 320 - 2 * 10 <= allowed <= 320
        assert int(await redis.get(counter)) <= 320
        # Just after the window turns, the old count still weighs: a lease only gets the room that is left.
        assert (await a.hit("k", limit=320, window=60, now=start + 61, lease=10)).allowed
        assert await redis.get(f"{prefix}rl:k|60:{int(start // 60) + 1}") == "5"  # 320 - 320 * 59/60 = 5.3
    finally:
        await a.close()
        await b.close()
        for key in await redis.keys(f"{prefix}*"):
            await redis.delete(key)
        await redis.aclose()


async def test_a_burst_waits_for_one_lease_instead_of_taking_one_each() -> None:
    """Fifty requests at once (a window turning under load): leases are fetched one at a time and the rest
    spend from them, so Redis counts what was served, not fifty leases."""
    import asyncio

    from redis.asyncio import Redis

    prefix = f"authserver-test-{RUN_ID}-burst-{secrets.token_hex(4)}:"
    limiter = RedisLimiter(REDIS_URL, key_prefix=prefix, timeout=1.0)
    redis = Redis.from_url(REDIS_URL, decode_responses=True)
    start = 3_000_000 * 60.0
    try:
        decisions = await asyncio.gather(
            *(limiter.hit("k", limit=10_000, window=60, now=start + 1, lease=10) for _ in range(50))
        )
        assert all(d.allowed for d in decisions)
        assert await redis.get(f"{prefix}rl:k|60:{int(start // 60)}") == "50"
    finally:
        await limiter.close()
        for key in await redis.keys(f"{prefix}*"):
            await redis.delete(key)
        await redis.aclose()


async def test_login_limit_per_ip(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings(login_per_ip=5)) as run:
        statuses = [(await run.http.get("/login?i=nothing")).status_code for _ in range(6)]
        assert statuses == [400] * 5 + [429]
        response = await run.http.get("/login?i=nothing")
        assert response.status_code == 429
        assert "text/html" in response.headers["content-type"]
        assert int(response.headers["retry-after"]) >= 1
        assert response.headers["ratelimit-limit"] == "5"
        assert response.headers["cache-control"].startswith("no-store")
        async with run.client_from(random_ip()) as other:
            assert (await other.get("/login?i=nothing")).status_code == 400
        run.clock.advance(120)
        assert (await run.http.get("/login?i=nothing")).status_code == 400
        events = await run.services.events.query(event="ratelimit", ip=run.ip)
        assert len(events) == 1 and events[0]["details"]["scope"] == "login"


async def test_authorize_limit_per_ip(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings(authorize_per_ip=3)) as run:
        statuses = [(await run.http.get("/authorize")).status_code for _ in range(4)]
        assert statuses == [400, 400, 400, 429]


async def test_token_limit_per_client_and_client_override(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings(token_per_client=3)) as run:
        default = await make_client(run.services, grant_types=["client_credentials"])
        flood_alerts = await make_client(run.services, grant_types=["client_credentials"])
        async with run.services.sessions.begin() as session:
            from authserver.storage.sql.models import Client

            row = await session.get(Client, flood_alerts.client_id)
            assert row is not None
            row.rate_limit_per_minute = 6
        run.services.clients.forget(flood_alerts.client_id)

        async def status(client) -> int:  # type: ignore[no-untyped-def]
            response = await run.http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))
            if response.status_code == 429:
                assert response.json() == {"error": "rate_limited", "error_description": "Too many requests. Retry later."}
                assert {"retry-after", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} <= set(response.headers)
            return response.status_code

        assert [await status(default) for _ in range(4)] == [200, 200, 200, 429]
        assert [await status(flood_alerts) for _ in range(7)] == [200] * 6 + [429]


async def test_userinfo_limit_per_token(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings(userinfo_per_token=2)) as run:
        client = await make_client(run.services)
        person = await make_user(run.services)
        tokens = []
        for _ in range(2):
            run.http.cookies.clear()
            params, verifier = await authorize(run.http, client, person)
            tokens.append((await redeem(run.http, client, params["code"], verifier)).json()["access_token"])
        headers = [{"Authorization": f"Bearer {t}"} for t in tokens]
        assert [(await run.http.get("/userinfo", headers=headers[0])).status_code for _ in range(3)] == [200, 200, 429]
        assert (await run.http.get("/userinfo", headers=headers[1])).status_code == 200


async def test_discovery_and_jwks_are_not_limited(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings(authorize_per_ip=1, login_per_ip=1)) as run:
        for _ in range(20):
            assert (await run.http.get("/jwks")).status_code == 200
            assert (await run.http.get("/.well-known/openid-configuration")).status_code == 200


async def test_sign_in_page_under_the_limit_is_unaffected(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings()) as run:
        person = await make_user(run.services)
        for _ in range(5):
            form = await login_page(run.http)
            response = await run.http.post("/login", data={"i": form[0], "csrf": form[1], "username": person.username, "password": person.password})
            assert response.status_code == 303


async def test_introspection_and_revocation_limits_per_client(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings(introspection_per_client=2, revocation_per_client=2)) as run:
        client = await make_client(run.services, grant_types=["client_credentials"], can_introspect=True)
        auth = (client.client_id, client.secret)
        introspected = [(await run.http.post("/introspect", data={"token": "x"}, auth=auth)).status_code for _ in range(3)]
        assert introspected == [200, 200, 429]
        revoked = [(await run.http.post("/revoke", data={"token": "x"}, auth=auth)).status_code for _ in range(3)]
        assert revoked == [200, 200, 429]


async def test_mfa_step_is_limited_per_ip(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings(mfa_per_ip=2)) as run:
        form = {"i": "no-such-interaction", "csrf": "x", "code": "123456"}
        statuses = [(await run.http.post("/mfa", data=form)).status_code for _ in range(3)]
        assert statuses[:2] != [429, 429] and statuses[2] == 429
