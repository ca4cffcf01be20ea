"""Key-rotation tests mutate key state, so each gets its own database (never the session's shared one)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from authserver.app import create_app
from authserver.clock import FrozenClock
from authserver.services import Services
from authserver.settings import Settings, load_settings
from authserver.storage.sql.migrate import upgrade
from tests.conftest import create_pg_database, drop_pg_database, environ_for, fast_passwords


@pytest.fixture
async def fresh_database_url(backend: str, tmp_root: Path) -> AsyncIterator[str]:
    if backend == "postgres":
        name = await create_pg_database()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
        await asyncio.to_thread(upgrade, url)
        yield url
        await drop_pg_database(name)
    else:
        url = f"sqlite+aiosqlite:///{tmp_root / f'keys-{secrets.token_hex(4)}.db'}"
        await asyncio.to_thread(upgrade, url)
        yield url


@pytest.fixture
def make_settings(backend: str, fresh_database_url: str, tmp_root: Path) -> Callable[..., Settings]:
    def make(**extra: str) -> Settings:
        return load_settings(environ_for(backend, fresh_database_url, tmp_root, **extra))

    return make


@contextlib.asynccontextmanager
async def running(settings: Settings, clock: FrozenClock) -> AsyncIterator[tuple[Starlette, Services, httpx.AsyncClient]]:
    """One server instance: lifespan started, and an HTTP client bound to it."""
    app = create_app(settings, clock=clock, passwords=fast_passwords())
    transport = httpx.ASGITransport(app=app)
    async with LifespanManager(app), httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield app, app.state.services, http


def epoch(clock: FrozenClock) -> Callable[[], float]:
    return lambda: clock.now().timestamp()


async def client_token(http: httpx.AsyncClient, client: Any, scope: str = "read:levels") -> str:
    response = await http.post(
        "/token", data={"grant_type": "client_credentials", "scope": scope}, auth=(client.client_id, client.secret)
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
