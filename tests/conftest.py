"""Shared fixtures: real PostgreSQL + Redis, and SQLite + the in-process cache.

Each backend gets its own freshly migrated database for the test session (PostgreSQL database
``authserver_test_<hex>``, a SQLite file in a temporary folder), dropped afterwards. A missing PostgreSQL
or Redis fails the run: nothing is skipped.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis
from starlette.applications import Starlette

from authserver.accounts.passwords import Passwords
from authserver.app import create_app
from authserver.services import Services
from authserver.settings import Settings, load_settings
from authserver.storage.sql.migrate import upgrade

PG_ADMIN_DSN = os.environ.get("AUTHSERVER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("AUTHSERVER_TEST_REDIS", "redis://127.0.0.1:6379/0")
ISSUER = "http://testserver"
BACKENDS = ["postgres", "sqlite"]
RUN_ID = secrets.token_hex(4)
TEST_RELAXED_LIMITS = (
    "ip_failures", "client_failures", "client_ip_failures", "authorize_per_ip", "login_per_ip", "mfa_per_ip",
    "token_per_client", "introspection_per_client", "revocation_per_client", "userinfo_per_token",
    "password_reset_per_ip", "password_reset_per_address", "signup_per_ip",
)


def fast_passwords() -> Passwords:
    """Cheap argon2 parameters so tests stay fast; the production parameters have their own test."""
    return Passwords(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("authserver")


async def create_pg_database() -> str:
    name = f"authserver_test_{RUN_ID}_{secrets.token_hex(3)}"
    try:
        connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        pytest.fail(f"PostgreSQL is required for the tests ({PG_ADMIN_DSN}): {error}")
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return name


async def drop_pg_database(name: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def require_redis() -> None:
    redis = Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        await redis.ping()
    except Exception as error:  # noqa: BLE001 - any failure means Redis is not usable
        pytest.fail(f"Redis is required for the tests ({REDIS_URL}): {error}")
    finally:
        await redis.aclose()


async def delete_redis_prefix(prefix: str) -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        async for key in redis.scan_iter(match=f"{prefix}*", count=500):
            await redis.delete(key)
    finally:
        await redis.aclose()


def environ_for(backend: str, database_url: str, tmp_root: Path, **extra: str) -> dict[str, str]:
    env = {
        "AUTHSERVER_SERVER__ISSUER": ISSUER,
        "AUTHSERVER_SERVER__COOKIE_SECURE": "false",
        "AUTHSERVER_SERVER__DEMO": "false",
        "AUTHSERVER_DATABASE__URL": database_url,
        "AUTHSERVER_SECURITY__KEY_FILE": str(tmp_root / "secrets.json"),
        "AUTHSERVER_CACHE__URL": REDIS_URL if backend == "postgres" else "memory://",
        "AUTHSERVER_CACHE__KEY_PREFIX": f"authserver-test-{RUN_ID}:",
    }
    # Every test signs in from 127.0.0.1: per-IP limits high enough that the suite never trips them.
    # Abuse-protection tests set their own numbers (tests/abuse/).
    env.update({f"AUTHSERVER_ABUSE__{name.upper()}": "1000000" for name in TEST_RELAXED_LIMITS})
    # The suite's many failed sign-ins must not switch emergency mode on for everyone: its tests turn it on.
    env["AUTHSERVER_ABUSE__EMERGENCY_TRIGGER_FAILURES"] = "0"
    env.update(extra)
    return env


@pytest.fixture(scope="session", params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_root: Path) -> AsyncIterator[str]:
    """A migrated database for one backend, shared by the session's tests (data is namespaced by factories)."""
    backend = request.param
    if backend == "postgres":
        await require_redis()
        name = await create_pg_database()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        await asyncio.to_thread(upgrade, url)
        yield url
        await drop_pg_database(name)
        await delete_redis_prefix(f"authserver-test-{RUN_ID}:")
    else:
        url = f"sqlite+aiosqlite:///{tmp_root / f'test-{secrets.token_hex(3)}.db'}"
        await asyncio.to_thread(upgrade, url)
        yield url


@pytest.fixture
def backend(database_url: str) -> str:
    return "postgres" if database_url.startswith("postgresql") else "sqlite"


@pytest.fixture
def settings(backend: str, database_url: str, tmp_root: Path) -> Settings:
    return load_settings(environ_for(backend, database_url, tmp_root))


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    application = create_app(settings, passwords=fast_passwords())
    async with LifespanManager(application):
        yield application


@pytest.fixture
def services(app: Starlette) -> Services:
    services: Services = app.state.services
    return services


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
        yield client


@pytest.fixture(params=BACKENDS)
async def own_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A freshly migrated database of the test's own, for tests that move the clock far (retention, expiry)
    and must not leave rows dated in the future in the shared one."""
    if request.param == "postgres":
        await require_redis()
        name = await create_pg_database()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        try:
            await asyncio.to_thread(upgrade, url)
            yield url
        finally:
            await drop_pg_database(name)
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / f'own-{secrets.token_hex(3)}.db'}"
        await asyncio.to_thread(upgrade, url)
        yield url
