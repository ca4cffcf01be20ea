"""SPEC.md R-01..R-05: PostgreSQL or Redis down, slow, or back again.

The app reaches the real PostgreSQL and Redis through a TCP proxy the test controls. Anything that decides
who gets a credential fails closed (503 + Retry-After, never a token, never a redirect from /authorize);
discovery and JWKS keep being served from memory; the app recovers by itself when the dependency returns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from authserver.app import create_app
from authserver.services import Services
from authserver.settings import load_settings
from tests.conftest import ISSUER, REDIS_URL, create_pg_database, drop_pg_database, environ_for, fast_passwords
from tests.support.factories import REDIRECT_URI, make_client, pkce_pair
from tests.support.proxy import FaultProxy



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


@pytest.fixture
async def proxied(pg_name: str, proxies: tuple[FaultProxy, FaultProxy], tmp_root: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
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
            yield http, app.state.services


def authorize_params(client_id: str) -> dict[str, str]:
    _, challenge = pkce_pair()
    return {
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI, "scope": "openid",
        "state": "s", "code_challenge": challenge, "code_challenge_method": "S256",
    }


async def test_postgres_down_fails_closed_and_recovers(proxied: tuple[httpx.AsyncClient, Services], proxies: tuple[FaultProxy, FaultProxy]) -> None:
    http, services = proxied
    pg, _ = proxies
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


async def test_postgres_slow_answers_503_within_the_timeout(proxied: tuple[httpx.AsyncClient, Services], proxies: tuple[FaultProxy, FaultProxy]) -> None:
    http, services = proxied
    pg, _ = proxies
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


async def test_redis_down_keeps_machine_tokens_and_refuses_sign_in_flows(
    proxied: tuple[httpx.AsyncClient, Services], proxies: tuple[FaultProxy, FaultProxy]
) -> None:
    http, services = proxied
    _, redis = proxies
    client = await make_client(services)
    redis.set_down(True)
    token = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))
    assert token.status_code == 200
    page = await http.get("/authorize", params=authorize_params(client.client_id))
    assert page.status_code == 503 and "location" not in page.headers
    assert (await http.get("/readyz")).json()["checks"]["cache"] is False
    redis.set_down(False)
    for _ in range(20):
        page = await http.get("/authorize", params=authorize_params(client.client_id))
        if page.status_code == 303:
            break
        await asyncio.sleep(0.1)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
