"""Shared limits across instances (SPEC R-12) and the Redis-down floor (SPEC R-04, R-05)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from authserver.app import build_services
from authserver.settings import Settings, load_settings
from authserver.storage.sql.migrate import upgrade
from tests.abuse.conftest import login_page, post_login, random_ip, real_limits, running
from tests.conftest import ISSUER, create_pg_database, drop_pg_database, environ_for, fast_passwords
from tests.support.factories import make_client, make_user
from tests.support.servers import RedisServer, free_port, wait_for_port

WRONG = "not the right password at all"


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, RedisServer]]:
    server = RedisServer()
    server.start()
    try:
        yield server.url, server
    finally:
        server.stop()


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    name = await create_pg_database()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    await asyncio.to_thread(upgrade, url)
    yield url
    await drop_pg_database(name)


async def test_redis_down_falls_back_to_a_stricter_local_limit(pg_url: str, tmp_path: Path) -> None:
    with redis_server() as (redis_url, redis):
        env = environ_for("postgres", pg_url, tmp_path, **real_limits(login_per_ip=8, fallback_divisor=4, token_per_client=5),
                          AUTHSERVER_CACHE__URL=redis_url, AUTHSERVER_CACHE__TIMEOUT="0.5")
        async with running(load_settings(env)) as run:
            client = await make_client(run.services, grant_types=["client_credentials"])
            person = await make_user(run.services)
            auth = (client.client_id, client.secret or "")

            async def token() -> int:
                return (await run.http.post("/token", data={"grant_type": "client_credentials"}, auth=auth)).status_code

            assert [await token() for _ in range(3)] == [200, 200, 200]
            form = await login_page(run.http)  # one login request counted in Redis
            assert (await post_login(run.http, form, person.username, WRONG)).status_code == 401

            redis.stop()

            # Machine tokens keep flowing up to the normal limit, counted per instance (fail open with a floor).
            assert [await token() for _ in range(6)] == [200] * 5 + [429]
            # Sign-in: the local floor is 8 / 4 = 2 a minute; never unlimited, never a 500.
            statuses = [(await post_login(run.http, form, person.username, person.password)).status_code for _ in range(4)]
            assert all(s in (429, 503) for s in statuses) and statuses[2:] == [429, 429], statuses
            # Brute-force verdicts live in the database: still enforced with Redis gone.
            for other in (random_ip(),):
                async with run.client_from(other) as http:
                    response = await http.get("/jwks")
                    assert response.status_code == 200
            degraded = await run.services.events.query(event="ratelimit", outcome="degraded")
            assert degraded, "the degraded mode is in the security log"
            assert run.services.limiter.limiter.degraded


def _server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "authserver.cli:app_from_environment", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


async def test_two_server_processes_share_counters_and_locks(pg_url: str, tmp_path: Path) -> None:
    prefix = f"authserver-test-2p-{secrets.token_hex(4)}:"
    env = environ_for("postgres", pg_url, tmp_path, **real_limits(login_per_ip=12), AUTHSERVER_CACHE__KEY_PREFIX=prefix)
    settings: Settings = load_settings(env)
    services = build_services(settings, passwords=fast_passwords())
    try:
        await services.keys.ensure_active_keys()
        person = await make_user(services)
    finally:
        await services.cache.close()
        await services.limiter.close()
        await services.engine.dispose()
    ports = [free_port(), free_port()]
    processes = [_server(env, port) for port in ports]
    try:
        for port, process in zip(ports, processes, strict=True):
            await asyncio.to_thread(wait_for_port, port, process)
        a, b = (httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", headers={"Host": ISSUER.split("//")[1]}) for port in ports)
        async with a, b:
            # Keep the request-limit part inside one minute window (the servers use the real clock).
            if time.time() % 60 > 45:
                await asyncio.sleep(61 - time.time() % 60)
            form = await login_page(a)  # interaction in Redis: usable on both
            b.cookies = a.cookies  # one browser behind a load balancer: the same cookies reach both
            servers = [a, b, a, b, a]
            statuses = [(await post_login(s, form, person.username, WRONG)).status_code for s in servers]
            assert statuses == [401] * 5
            # Five failures over two processes lock the account on both.
            for server in (a, b):
                response = await post_login(server, form, person.username, person.password)
                assert response.status_code == 429
            # The per-IP request limit (12 a minute) is shared too: 1 + 5 + 2 requests so far.
            statuses = [(await (a if n % 2 else b).get("/login?i=x")).status_code for n in range(5)]
            assert statuses == [400, 400, 400, 400, 429], statuses
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
