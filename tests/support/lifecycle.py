"""Helpers for the token-lifecycle tests: a user's tokens in one call, introspection and revocation calls,
and an app on a FrozenClock for expiry tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select

from authserver.app import create_app
from authserver.clock import FrozenClock
from authserver.services import Services
from authserver.settings import Settings, load_settings
from authserver.storage.sql.models import Grant, RefreshToken
from tests.conftest import ISSUER, environ_for, fast_passwords
from tests.support.factories import AppClient, Person, authorize, make_client, make_user, redeem

SCOPE = "openid profile email offline_access read:levels"
# Strict refresh rotation (no grace period): for tests that pin what an immediate reuse does. The grace
# period itself is tested in tests/integration/test_refresh_grace.py.
STRICT_ROTATION = {"AUTHSERVER_TOKENS__REFRESH_TOKEN_GRACE_PERIOD": "0"}


def strict_settings(backend: str, database_url: str, tmp_root: Path) -> Settings:
    """The shared ``settings`` fixture's settings, with strict rotation (override ``settings`` in a module)."""
    return load_settings(environ_for(backend, database_url, tmp_root, **STRICT_ROTATION))


@dataclass
class Issued:
    client: AppClient
    user: Person
    tokens: dict[str, Any]

    @property
    def access(self) -> str:
        return str(self.tokens["access_token"])

    @property
    def refresh(self) -> str:
        return str(self.tokens["refresh_token"])


async def issue(http: httpx.AsyncClient, services: Services, *, client: AppClient | None = None, user: Person | None = None, scope: str = SCOPE, **client_overrides: Any) -> Issued:
    client = client or await make_client(services, **client_overrides)
    user = user or await make_user(services)
    params, verifier = await authorize(http, client, user, scope=scope)
    response = await redeem(http, client, params["code"], verifier)
    assert response.status_code == 200, response.text
    return Issued(client, user, response.json())


def auth_of(client: AppClient) -> tuple[str, str] | None:
    return (client.client_id, client.secret) if client.secret else None


async def refresh(http: httpx.AsyncClient, client: AppClient, token: str) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token}
    if client.secret is None:
        data["client_id"] = client.client_id
    return await http.post("/token", data=data, auth=auth_of(client))


async def revoke(http: httpx.AsyncClient, client: AppClient, token: str, **extra: str) -> httpx.Response:
    data = {"token": token, **extra}
    if client.secret is None:
        data["client_id"] = client.client_id
    return await http.post("/revoke", data=data, auth=auth_of(client))


async def resource_server(services: Services) -> AppClient:
    return await make_client(services, grant_types=["client_credentials"], redirect_uris=[], can_introspect=True)


async def introspect(http: httpx.AsyncClient, caller: AppClient, token: str, **extra: str) -> dict[str, Any]:
    response = await http.post("/introspect", data={"token": token, **extra}, auth=auth_of(caller))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    return body


async def is_active(http: httpx.AsyncClient, caller: AppClient, token: str) -> bool:
    return bool((await introspect(http, caller, token))["active"])


async def live_refresh_tokens(services: Services, grant_id: str) -> int:
    """Refresh tokens of a family that would still be accepted: neither consumed nor revoked, grant live."""
    async with services.sessions() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(RefreshToken)
            .join(Grant, Grant.grant_id == RefreshToken.grant_id)
            .where(
                RefreshToken.grant_id == grant_id,
                RefreshToken.consumed_at.is_(None),
                RefreshToken.revoked_at.is_(None),
                Grant.revoked_at.is_(None),
            )
        )
    return int(count or 0)


@contextlib.asynccontextmanager
async def frozen_app(backend: str, database_url: str, tmp_root: Path, **extra_env: str) -> AsyncIterator[tuple[httpx.AsyncClient, Services, FrozenClock]]:
    clock = FrozenClock()
    settings = load_settings(environ_for(backend, database_url, tmp_root, **extra_env))
    application = create_app(settings, clock=clock, passwords=fast_passwords())
    transport = httpx.ASGITransport(app=application)
    async with LifespanManager(application), httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        yield http, application.state.services, clock
