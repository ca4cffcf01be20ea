"""Replay (RFC 6238 §5.2) and the guessing lock hold across two server processes sharing PostgreSQL and Redis.

Two uvicorn instances on free loopback ports; one browser's flow hops between them (SPEC R-12).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from authserver.app import build_services
from authserver.keys.encryption import load_or_create_key_file
from authserver.mfa import totp
from authserver.settings import load_settings
from authserver.storage.sql.migrate import upgrade
from tests.conftest import (
    RUN_ID,
    create_pg_database,
    delete_redis_prefix,
    drop_pg_database,
    environ_for,
    require_redis,
)
from tests.support.factories import (
    REDIRECT_URI,
    AppClient,
    Person,
    form_field,
    make_client,
    make_user,
    pkce_pair,
)
from tests.support.mfa import Enrolled, enrol


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Cluster:
    urls: list[str]
    env: dict[str, str]


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    await require_redis()
    root = tmp_path_factory.mktemp("two-instances")
    name = await create_pg_database()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    prefix = f"authserver-test-{RUN_ID}-cluster:"
    await asyncio.to_thread(upgrade, url)
    ports = [_free_port(), _free_port()]
    env = environ_for("postgres", url, root, AUTHSERVER_CACHE__KEY_PREFIX=prefix, AUTHSERVER_SERVER__ISSUER=f"http://127.0.0.1:{ports[0]}")
    load_or_create_key_file(env["AUTHSERVER_SECURITY__KEY_FILE"])  # one key file for both, before either starts
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:  # one after the other: the first creates the signing keys
            process = subprocess.Popen(  # noqa: ASYNC220 - spawning is quick; we poll it asynchronously
                [sys.executable, "-m", "uvicorn", "authserver.cli:app_from_environment", "--factory",
                 "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
                env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            processes.append(process)
            await _wait_ready(f"http://127.0.0.1:{port}", process)
        yield Cluster([f"http://127.0.0.1:{p}" for p in ports], env)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        await drop_pg_database(name)
        await delete_redis_prefix(prefix)


async def _wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(150):
            if process.poll() is not None:
                raise AssertionError(f"server exited: {process.stderr.read().decode() if process.stderr else ''}")
            try:
                if (await http.get(f"{base}/healthz", timeout=1)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"{base} did not start")


@pytest.fixture(scope="module")
async def people(cluster: Cluster) -> AsyncIterator[tuple[AppClient, list[tuple[Person, Enrolled]]]]:
    services = build_services(load_settings(cluster.env))
    try:
        await services.keys.ensure_active_keys()
        client = await make_client(services)
        enrolled = []
        for _ in range(2):
            person = await make_user(services)
            enrolled.append((person, await enrol(services, person.account_id)))
        yield client, enrolled
    finally:
        await services.cache.close()
        await services.engine.dispose()


async def _password_on(http: httpx.AsyncClient, urls: list[str], client: AppClient, person: Person) -> tuple[str, str]:
    """/authorize on instance 0, the password on instance 1; returns the interaction and CSRF of the /mfa page (instance 0)."""
    _, challenge = pkce_pair()
    start = await http.get(
        f"{urls[0]}/authorize",
        params={"response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT_URI, "scope": "openid",
                "code_challenge": challenge, "code_challenge_method": "S256"},
    )
    login_page = await http.get(urls[1] + start.headers["location"])
    after = await http.post(
        f"{urls[1]}/login",
        data={"i": form_field(login_page.text, "i"), "csrf": form_field(login_page.text, "csrf"),
              "username": person.username, "password": person.password},
    )
    assert after.status_code == 303 and after.headers["location"].startswith("/mfa?i="), after.text
    page = await http.get(urls[0] + after.headers["location"])
    return form_field(page.text, "i"), form_field(page.text, "csrf")


def _next_code(secret: str) -> str:
    """The code of the step after the current one (inside the ±1 window; the current one was spent at enrolment)."""
    return totp.code_at(secret, datetime.now(UTC) + timedelta(seconds=30))


async def test_a_code_used_on_one_instance_is_refused_on_the_other(
    cluster: Cluster, people: tuple[AppClient, list[tuple[Person, Enrolled]]]
) -> None:
    client, enrolled = people
    person, secrets = enrolled[0]
    code = _next_code(secrets.secret)
    async with httpx.AsyncClient() as first:
        i, csrf = await _password_on(first, cluster.urls, client, person)
        accepted = await first.post(f"{cluster.urls[1]}/mfa", data={"i": i, "csrf": csrf, "code": code})
        assert accepted.status_code == 303, accepted.text
        resumed = await first.get(cluster.urls[0] + accepted.headers["location"])
        assert resumed.headers["location"].startswith(REDIRECT_URI)
    async with httpx.AsyncClient() as second:
        i, csrf = await _password_on(second, list(reversed(cluster.urls)), client, person)
        replayed = await second.post(f"{cluster.urls[0]}/mfa", data={"i": i, "csrf": csrf, "code": code})
        assert replayed.status_code == 401 and "ya se usó" in replayed.text


async def test_wrong_codes_spread_over_instances_lock_both(
    cluster: Cluster, people: tuple[AppClient, list[tuple[Person, Enrolled]]]
) -> None:
    client, enrolled = people
    person, secrets = enrolled[1]
    wrong = next(c for c in ("000000", "111111", "222222") if totp.matching_step(secrets.secret, c, now=datetime.now(UTC), window=2) is None)
    async with httpx.AsyncClient() as http:
        i, csrf = await _password_on(http, cluster.urls, client, person)
        statuses = []
        for attempt in range(5):
            answer = await http.post(f"{cluster.urls[attempt % 2]}/mfa", data={"i": i, "csrf": csrf, "code": wrong})
            statuses.append(answer.status_code)
        assert statuses == [401, 401, 401, 401, 429]
        for url in cluster.urls:
            locked = await http.post(f"{url}/mfa", data={"i": i, "csrf": csrf, "code": _next_code(secrets.secret)})
            assert locked.status_code == 429 and "bloqueado" in locked.text
