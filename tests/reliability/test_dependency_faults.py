"""SPEC.md R-01..R-05: PostgreSQL or Redis down, slow, or back again.

The app reaches the real PostgreSQL and Redis through a TCP proxy the test controls. Anything that decides
who gets a credential fails closed (503 + Retry-After, never a token, never a redirect from /authorize);
discovery and JWKS keep being served from memory; the app recovers by itself when the dependency returns.
Slow means beyond the configured timeouts: the answer is the outage's, within a bound. Restarts: PostgreSQL's
connections all cut during refresh traffic (no row lost or doubled), and a Redis of the test's own killed and
started again empty on the same port.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select

from authserver.app import create_app
from authserver.services import Services
from authserver.settings import load_settings
from authserver.storage.sql.models import Grant, RefreshToken
from authserver.tokens.opaque import digest
from tests.conftest import ISSUER, REDIS_URL, create_pg_database, drop_pg_database, environ_for, fast_passwords
from tests.support.factories import REDIRECT_URI, authorize, form_field, make_client, make_user, pkce_pair, redeem
from tests.support.lifecycle import refresh
from tests.support.proxy import FaultProxy
from tests.support.servers import RedisServer


@pytest.fixture(scope="module")
async def pg_name() -> AsyncIterator[str]:
    from authserver.storage.sql.migrate import upgrade

    name = await create_pg_database()
    await asyncio.to_thread(upgrade, f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}")
    yield name
    await drop_pg_database(name)


@pytest.fixture
async def proxies() -> AsyncIterator[tuple[FaultProxy, FaultProxy]]:
    pg = await FaultProxy("127.0.0.1", 5432).start()
    redis = await FaultProxy("127.0.0.1", int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])).start()
    yield pg, redis
    await pg.stop()
    await redis.stop()


@dataclass
class Rig:
    """The app under test, reaching PostgreSQL and Redis through proxies the test controls."""

    http: httpx.AsyncClient
    services: Services
    pg: FaultProxy
    redis: FaultProxy


@pytest.fixture
async def rig(pg_name: str, proxies: tuple[FaultProxy, FaultProxy], tmp_root: Path) -> AsyncIterator[Rig]:
    pg, redis = proxies
    env = environ_for(
        "postgres",
        f"postgresql+asyncpg://postgres@127.0.0.1:{pg.port}/{pg_name}",
        tmp_root,
        AUTHSERVER_CACHE__URL=f"redis://127.0.0.1:{redis.port}/0",
        AUTHSERVER_DATABASE__POOL_TIMEOUT="1",
        AUTHSERVER_DATABASE__STATEMENT_TIMEOUT_MS="500",
        AUTHSERVER_CACHE__TIMEOUT="0.3",
    )
    app = create_app(load_settings(env), passwords=fast_passwords())
    async with LifespanManager(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
            yield Rig(http, app.state.services, pg, redis)


def authorize_params(client_id: str) -> dict[str, str]:
    _, challenge = pkce_pair()
    return {
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI, "scope": "openid",
        "state": "s", "code_challenge": challenge, "code_challenge_method": "S256",
    }


async def test_postgres_down_fails_closed_and_recovers(rig: Rig) -> None:
    http, services, pg = rig.http, rig.services, rig.pg
    client = await make_client(services)
    auth = (client.client_id, client.secret)
    assert (await http.post("/token", data={"grant_type": "client_credentials"}, auth=auth)).status_code == 200

    pg.set_down(True)
    services.clients.forget(client.client_id)  # force a registry read
    token = await http.post("/token", data={"grant_type": "client_credentials"}, auth=auth)
    assert token.status_code == 503
    assert token.json()["error"] == "temporarily_unavailable"
    assert token.headers["retry-after"]
    assert "access_token" not in token.text
    page = await http.get("/authorize", params=authorize_params(client.client_id))
    assert page.status_code == 503 and "location" not in page.headers
    assert (await http.get("/jwks")).status_code == 200
    assert (await http.get("/.well-known/openid-configuration")).status_code == 200
    assert (await http.get("/healthz")).status_code == 200
    ready = await http.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["database"] is False

    pg.set_down(False)
    for _ in range(20):  # the pool discards dead connections (pre-ping) and reconnects on its own
        recovered = await http.post("/token", data={"grant_type": "client_credentials"}, auth=auth)
        if recovered.status_code == 200:
            break
        await asyncio.sleep(0.1)
    assert recovered.status_code == 200
    assert (await http.get("/readyz")).status_code == 200


async def test_postgres_slow_answers_503_within_the_timeout(rig: Rig) -> None:
    http, services, pg = rig.http, rig.services, rig.pg
    client = await make_client(services)
    pg.latency = 5.0
    pg.cut()  # new connections only, each answer delayed by 5 s
    services.clients.forget(client.client_id)
    started = time.monotonic()
    response = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert elapsed < 5.0, "the request must give up before the slow dependency answers"
    pg.latency = 0.0


async def test_redis_down_keeps_machine_tokens_and_refuses_sign_in_flows(rig: Rig) -> None:
    http, services, redis = rig.http, rig.services, rig.redis
    client = await make_client(services)
    redis.set_down(True)
    token = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))
    assert token.status_code == 200
    page = await http.get("/authorize", params=authorize_params(client.client_id))
    assert page.status_code == 503 and "location" not in page.headers
    assert (await http.get("/readyz")).json()["checks"]["cache"] is False
    redis.set_down(False)
    assert await _recovers(http, client.client_id)


async def _recovers(http: httpx.AsyncClient, client_id: str, *, seconds: float = 10.0) -> bool:
    """Whether a sign-in can start again (303 to the login page) within ``seconds``, without a restart."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        page = await http.get("/authorize", params=authorize_params(client_id))
        assert page.status_code in (303, 503), page.text
        if page.status_code == 303:
            return page.headers["location"].startswith("/login")
        await asyncio.sleep(0.1)
    return False


async def test_redis_slow_answers_503_within_a_bound_and_keeps_machine_paths(rig: Rig) -> None:
    http, services, redis = rig.http, rig.services, rig.redis
    client = await make_client(services)
    user = await make_user(services)
    started = await http.get("/authorize", params=authorize_params(client.client_id))
    assert started.status_code == 303
    page = await http.get(started.headers["location"])  # an interaction stored while Redis was fine
    assert page.status_code == 200

    redis.latency = 5.0  # open connections stay open; every Redis answer now arrives 5 s late (cache.timeout 0.3 s)
    timings: dict[str, float] = {}

    async def timed(name: str, call: Awaitable[httpx.Response]) -> httpx.Response:
        began = time.monotonic()
        response = await call
        timings[name] = time.monotonic() - began
        return response

    token = await timed("token", http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret)))
    login = await timed("login", http.post("/login", data={
        "i": form_field(page.text, "i"), "csrf": form_field(page.text, "csrf"), "username": user.username, "password": user.password,
    }))
    authorize = await timed("authorize", http.get("/authorize", params=authorize_params(client.client_id)))
    jwks = await timed("jwks", http.get("/jwks"))
    discovery = await timed("discovery", http.get("/.well-known/openid-configuration"))
    redis.latency = 0.0

    for response in (login, authorize):  # fail closed: no session, no code, no redirect
        assert response.status_code == 503 and response.headers["retry-after"], response.text
        assert "location" not in response.headers and "set-cookie" not in response.headers
    assert token.status_code == 200 and "access_token" in token.json()
    assert jwks.status_code == 200 and discovery.status_code == 200
    # Each answer gives up after a few cache timeouts; none waits for the slow Redis (5 s).
    assert max(timings.values()) < 3.0, timings
    assert await _recovers(http, client.client_id)


async def test_redis_restart_is_recovered_without_restarting_the_server(pg_name: str, tmp_root: Path) -> None:
    """A real restart of a Redis of our own (killed, started again on the same port, empty)."""
    redis = RedisServer()
    redis.start()
    try:
        env = environ_for(
            "postgres", f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pg_name}", tmp_root,
            AUTHSERVER_CACHE__URL=redis.url, AUTHSERVER_CACHE__TIMEOUT="0.3",
        )
        app = create_app(load_settings(env), passwords=fast_passwords())
        async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
            services: Services = app.state.services
            client, user = await make_client(services), await make_user(services)
            api = await make_client(services, grant_types=[], redirect_uris=[], can_introspect=True)
            params, verifier = await authorize(http, client, user)
            revoked = (await redeem(http, client, params["code"], verifier)).json()["access_token"]
            assert (await http.post("/revoke", data={"token": revoked}, auth=(client.client_id, client.secret))).status_code == 200
            http.cookies.clear()

            redis.stop()
            token = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))
            assert token.status_code == 200
            page = await http.get("/authorize", params=authorize_params(client.client_id))
            assert page.status_code == 503 and "location" not in page.headers

            redis.start()  # same port, nothing in it: no interactions, no rate counters, no deny list
            assert await _recovers(http, client.client_id)
            params, verifier = await authorize(http, client, user)
            redeemed = await redeem(http, client, params["code"], verifier)
            assert redeemed.status_code == 200, redeemed.text

            async def active(token: str) -> bool:
                response = await http.post("/introspect", data={"token": token}, auth=(api.client_id, api.secret))
                assert response.status_code == 200, response.text
                return bool(response.json()["active"])

            # The deny list came back from PostgreSQL: the restart resurrected nothing.
            assert [await active(revoked), await active(redeemed.json()["access_token"])] == [False, True]
            assert (await http.get("/readyz")).status_code == 200
    finally:
        redis.stop()


async def test_postgres_restart_during_refresh_traffic_loses_and_duplicates_nothing(rig: Rig) -> None:
    """Every connection cut and refused for a second while refresh chains rotate, then PostgreSQL is back."""
    http, services, pg = rig.http, rig.services, rig.pg
    client, user = await make_client(services), await make_user(services)
    chains = []
    for _ in range(6):
        params, verifier = await authorize(http, client, user)
        redeemed = await redeem(http, client, params["code"], verifier)
        assert redeemed.status_code == 200, redeemed.text
        chains.append(redeemed.json()["refresh_token"])
    first_tokens = list(chains)
    rotated, unanswered, ended = [0] * len(chains), [0] * len(chains), [False] * len(chains)
    statuses: list[int] = []
    stop = asyncio.Event()

    async def rotate(index: int) -> None:
        while not stop.is_set():
            response = await refresh(http, client, chains[index])
            statuses.append(response.status_code)
            if response.status_code == 200:
                chains[index] = response.json()["refresh_token"]
                rotated[index] += 1
            elif response.status_code == 503:
                # No answer: the client retries the same token. If the commit had happened, the retry is reuse.
                assert response.headers["retry-after"]
                unanswered[index] += 1
                await asyncio.sleep(0.05)
            else:
                assert response.status_code == 400 and response.json()["error"] == "invalid_grant", response.text
                ended[index] = True
                return

    async def until_rotations(count: int, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while sum(rotated) < count and not all(ended) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    tasks = [asyncio.create_task(rotate(i)) for i in range(len(chains))]
    await until_rotations(30)
    await asyncio.sleep(random.uniform(0, 0.02))  # the chains run in step: land the cut anywhere in a request
    pg.set_down(True)  # PostgreSQL restarts: every open connection dies, new ones are refused
    await asyncio.sleep(1.0)
    pg.set_down(False)
    await until_rotations(sum(rotated) + 30)
    stop.set()
    await asyncio.gather(*tasks)

    assert set(statuses) <= {200, 400, 503}, sorted(set(statuses))
    assert 503 in statuses, "the outage did not hit the traffic"
    assert sum(rotated) >= 60 or all(ended), "traffic did not resume after the restart"
    async with services.sessions() as session:
        grants = (await session.scalars(select(Grant.grant_id).where(Grant.client_id == client.client_id))).all()
        orphans = await session.scalar(
            select(func.count()).select_from(RefreshToken).outerjoin(Grant, Grant.grant_id == RefreshToken.grant_id)
            .where(Grant.grant_id.is_(None))
        )
        assert len(grants) == len(chains), "one grant per successful redemption, none lost or doubled"
        assert orphans == 0
        for index, first in enumerate(first_tokens):
            grant_id = await session.scalar(select(RefreshToken.grant_id).where(RefreshToken.token_digest == digest(first)))
            rows = (await session.scalars(select(RefreshToken).where(RefreshToken.grant_id == grant_id))).all()
            live = [row.token_digest for row in rows if row.consumed_at is None and row.revoked_at is None]
            # One row per answered rotation, plus at most one per unanswered request whose commit happened.
            assert 1 + rotated[index] <= len(rows) <= 1 + rotated[index] + unanswered[index], (index, len(rows), rotated, unanswered)
            assert live == ([] if ended[index] else [digest(chains[index])])
    for index in (i for i, done in enumerate(ended) if not done):  # the surviving chains keep working
        assert (await refresh(http, client, chains[index])).status_code == 200
