"""Apps with their own settings or a controllable clock, for tests the shared ``app`` fixture cannot serve."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from authserver.app import create_app
from authserver.clock import Clock
from authserver.services import Services
from authserver.settings import load_settings
from tests.conftest import ISSUER, environ_for, fast_passwords


@contextlib.asynccontextmanager
async def running_app(
    database_url: str, tmp_root: Path, *, clock: Clock | None = None, base_url: str = ISSUER, **env: str
) -> AsyncIterator[tuple[Starlette, Services, httpx.AsyncClient]]:
    backend = "postgres" if database_url.startswith("postgresql") else "sqlite"
    settings = load_settings(environ_for(backend, database_url, tmp_root, **env))
    app = create_app(settings, clock=clock, passwords=fast_passwords())
    async with LifespanManager(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as http:
            yield app, app.state.services, http


def production_env(**extra: str) -> dict[str, str]:
    """Settings that pass the production checks (nothing is connected to: build services, not a server)."""
    return {
        "AUTHSERVER_SERVER__PRODUCTION": "true",
        "AUTHSERVER_SERVER__ISSUER": "https://id.cmipro.example",
        "AUTHSERVER_DATABASE__URL": "postgresql+asyncpg://db/authserver",
        "AUTHSERVER_CACHE__URL": "redis://redis:6379/0",
        "AUTHSERVER_SECURITY__ENCRYPTION_KEYS": '{"k1": "' + "A" * 43 + '"}',
        "AUTHSERVER_SECURITY__ACTIVE_ENCRYPTION_KEY": "k1",
        **extra,
    }


def location(response: httpx.Response) -> str:
    assert response.status_code in (302, 303), (response.status_code, response.text[:300])
    return str(response.headers["location"])


def path_of(url: str) -> str:
    return urlsplit(url).path


def auth_params(client_id: str, challenge: str, **extra: Any) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": "https://app.example/callback",
        "scope": "openid profile",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st-1",
    }
    params.update({k: str(v) for k, v in extra.items() if v is not None})
    return {k: v for k, v in params.items() if v != ""}
