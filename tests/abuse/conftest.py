"""Apps with real abuse-protection numbers (the shared fixtures relax them), a frozen clock and a chosen client IP."""

from __future__ import annotations

import contextlib
import dataclasses
import random
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
from authserver.settings import AbuseSettings, Settings, load_settings
from tests.conftest import ISSUER, TEST_RELAXED_LIMITS, environ_for, fast_passwords
from tests.support.factories import Person, form_field

DEFAULTS = AbuseSettings()


def random_ip() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def real_limits(**overrides: Any) -> dict[str, str]:
    """Environment with the shipped abuse defaults (or the given ones) instead of the suite's relaxed numbers."""
    env = {f"AUTHSERVER_ABUSE__{name.upper()}": str(getattr(DEFAULTS, name)) for name in TEST_RELAXED_LIMITS}
    env.update({f"AUTHSERVER_ABUSE__{k.upper()}": str(v) for k, v in overrides.items()})
    return env


@dataclasses.dataclass
class Running:
    app: Starlette
    services: Services
    clock: FrozenClock
    http: httpx.AsyncClient
    ip: str

    def client_from(self, ip: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app, client=(ip, 40000)), base_url=ISSUER)


@contextlib.asynccontextmanager
async def running(settings: Settings, *, clock: FrozenClock | None = None, ip: str | None = None) -> AsyncIterator[Running]:
    clock = clock or FrozenClock()
    app = create_app(settings, clock=clock, passwords=fast_passwords())
    ip = ip or random_ip()
    async with LifespanManager(app):
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
            yield Running(app, app.state.services, clock, http, ip)


@pytest.fixture
def make_settings(backend: str, database_url: str, tmp_root: Path) -> Callable[..., Settings]:
    def build(env: dict[str, str] | None = None, **limits: Any) -> Settings:
        return load_settings(environ_for(backend, database_url, tmp_root, **{**real_limits(**limits), **(env or {})}))

    return build


async def login_page(http: httpx.AsyncClient) -> tuple[str, str]:
    """Start a sign-in (via /account, signed out) and return the interaction id and CSRF token."""
    http.cookies.clear()
    start = await http.get("/account")
    assert start.status_code == 303, start.text
    page = await http.get(start.headers["location"])
    assert page.status_code == 200, page.text
    return form_field(page.text, "i"), form_field(page.text, "csrf")


async def post_login(http: httpx.AsyncClient, form: tuple[str, str], username: str, password: str) -> httpx.Response:
    return await http.post("/login", data={"i": form[0], "csrf": form[1], "username": username, "password": password})


async def try_login(http: httpx.AsyncClient, person: Person | str, password: str) -> httpx.Response:
    username = person if isinstance(person, str) else person.username
    return await post_login(http, await login_page(http), username, password)
