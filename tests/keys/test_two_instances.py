"""SPEC R-12: several server processes on one PostgreSQL: one rotation per period, one JWKS everywhere."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from authserver.app import build_services
from authserver.settings import load_settings
from authserver.storage.sql.migrate import upgrade
from authserver.storage.sql.models import SecurityEvent
from tests.conftest import create_pg_database, drop_pg_database, environ_for, require_redis

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Several processes share PostgreSQL (SQLite deployments are a single process): these tests run on
# PostgreSQL + Redis only, in a database of their own, instead of over both backends.


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    await require_redis()
    name = await create_pg_database()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    await asyncio.to_thread(upgrade, url)
    yield url
    await drop_pg_database(name)


async def test_two_processes_rotate_once_per_period(pg_url: str, tmp_root: Path) -> None:
    env = os.environ | environ_for(
        "postgres", pg_url, tmp_root, AUTHSERVER_KEYS__ROTATION_INTERVAL="3600", AUTHSERVER_KEYS__PUBLISH_AHEAD="1200"
    )
    start, step, passes = time.time(), 600.0, 19  # 3 hours and a bit, simulated: three rotations are due
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.keys.rotation_worker", str(start), str(step), str(passes), cwd=ROOT, env=env,
        )
        for _ in range(2)
    ]
    assert [await w.wait() for w in workers] == [0, 0]
    services = build_services(load_settings(env))
    try:
        async with services.sessions() as session:
            events = (await session.scalars(select(SecurityEvent).where(SecurityEvent.event == "keys.rotated"))).all()
        activations = [kid for e in events for kid in e.details["activated"]]
        # Each period, exactly one activation per algorithm (ES256, RS256): 3 periods → 6, none twice.
        assert len(activations) == 6 and len(set(activations)) == 6
        keys = await services.key_manager.list_keys()
        assert sorted((k.alg, k.state) for k in keys if k.state in ("active", "next")) == [
            ("ES256", "active"), ("ES256", "next"), ("RS256", "active"), ("RS256", "next")
        ]
    finally:
        await services.engine.dispose()
        await services.cache.close()


@pytest.fixture
async def two_servers(pg_url: str, tmp_root: Path) -> AsyncIterator[tuple[dict[str, str], list[str]]]:
    env = environ_for(
        "postgres", pg_url, tmp_root,
        AUTHSERVER_TOKENS__JWKS_MAX_AGE="1", AUTHSERVER_KEYS__RELOAD_INTERVAL="1", AUTHSERVER_KEYS__PUBLISH_AHEAD="2",
        AUTHSERVER_DATABASE__MIGRATE_ON_START="false",
    )
    processes, urls = [], []
    for _ in range(2):
        port = free_port()
        server_env = os.environ | env | {"AUTHSERVER_SERVER__ISSUER": "http://testserver"}
        processes.append(
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "authserver", "serve", "--host", "127.0.0.1", "--port", str(port),
                cwd=ROOT, env=server_env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        async with httpx.AsyncClient() as http:
            for url in urls:
                for _ in range(300):
                    try:
                        if (await http.get(f"{url}/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)
                else:
                    pytest.fail(f"server {url} did not start")
        yield env, urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            await process.wait()


async def jwks_of(http: httpx.AsyncClient, urls: list[str]) -> list[tuple[bytes, str]]:
    responses = [await http.get(f"{url}/jwks") for url in urls]
    assert all(r.status_code == 200 for r in responses)
    return [(r.content, r.headers["etag"]) for r in responses]


async def test_two_processes_serve_the_same_jwks_and_pick_up_a_rotation(
    two_servers: tuple[dict[str, str], list[str]],
) -> None:
    env, urls = two_servers
    async with httpx.AsyncClient() as http:
        before = await jwks_of(http, urls)
        assert before[0] == before[1]
        assert before[0][1] and json.loads(before[0][0])["keys"]
        rotate = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "authserver", "keys", "rotate", "--force", "--json",
            cwd=ROOT, env=os.environ | env, stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await rotate.communicate()
        assert rotate.returncode == 0
        activated = set(json.loads(out)["activated"])
        assert len(activated) == 2
        # Both instances pick the change up within keys.reload_interval (1 s here); wait up to 30 s.
        for _ in range(300):
            after = await jwks_of(http, urls)
            if after[0] != before[0] and after[0] == after[1]:
                break
            await asyncio.sleep(0.1)
        assert after[0] == after[1] != before[0]
        published = {k["kid"] for k in json.loads(after[0][0])["keys"]}
        assert activated <= published
        # And both sign with the newly activated key from then on (ES256 by default).
        services = build_services(load_settings(env))
        try:
            _, secret = await services.clients.create(
                client_id="rotation-probe", name="Probe", client_type="confidential", redirect_uris=[],
                grant_types=["client_credentials"], scopes=["read:levels"],
            )
        finally:
            await services.engine.dispose()
            await services.cache.close()
            await services.limiter.close()
        for url in urls:
            token = await http.post(f"{url}/token", data={"grant_type": "client_credentials"}, auth=("rotation-probe", secret or ""))
            assert token.status_code == 200, token.text
            header = json.loads(base64.urlsafe_b64decode(token.json()["access_token"].split(".")[0] + "=="))
            assert header["kid"] in activated, (url, header)
