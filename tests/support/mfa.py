"""MFA test helpers: an app on a controllable clock, enrolment, and the browser steps around /mfa."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from authserver.app import create_app
from authserver.clock import FrozenClock
from authserver.mfa import totp
from authserver.mfa.service import Context
from authserver.services import Services
from authserver.settings import load_settings
from tests.conftest import ISSUER, environ_for, fast_passwords
from tests.support.factories import (
    REDIRECT_URI,
    AppClient,
    Person,
    form_field,
    pkce_pair,
    query_of,
    sign_in,
)


def step_aligned_clock() -> FrozenClock:
    """A frozen clock 5 s into a TOTP step, so ±1-step arithmetic in tests is exact."""
    now = int(datetime.now(UTC).timestamp())
    return FrozenClock(datetime.fromtimestamp(now - now % 30 + 5, tz=UTC))


@dataclass
class MfaEnv:
    app: Starlette
    services: Services
    clock: FrozenClock
    http: httpx.AsyncClient

    def client(self) -> httpx.AsyncClient:
        """Another browser (its own cookies) on the same app."""
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=ISSUER)


@asynccontextmanager
async def mfa_env(backend: str, database_url: str, tmp_root: Path, **extra_env: str) -> AsyncIterator[MfaEnv]:
    clock = step_aligned_clock()
    settings = load_settings(environ_for(backend, database_url, tmp_root, **extra_env))
    app = create_app(settings, clock=clock, passwords=fast_passwords())
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http,
    ):
        yield MfaEnv(app, app.state.services, clock, http)


@dataclass
class Enrolled:
    secret: str
    backup_codes: list[str]


async def enrol(services: Services, account_id: str) -> Enrolled:
    """Enrol through the service (as the pages do); the confirming code's step is then used up."""
    account = await services.accounts.get(account_id)
    assert account is not None
    enrolment = await services.mfa.start_enrolment(account, Context())
    codes = await services.mfa.confirm_enrolment(account_id, totp.code_at(enrolment.secret, services.clock.now()), Context())
    assert codes is not None
    return Enrolled(enrolment.secret, codes)


def page_secret(text: str) -> str:
    match = re.search(r'<code class="secret" id="secret">([A-Z2-7 ]+)</code>', text)
    assert match, "no secret on the enrolment page"
    return match.group(1).replace(" ", "")


def page_backup_codes(text: str) -> list[str]:
    block = re.search(r'<ol class="backup-codes" id="backup-codes">(.*?)</ol>', text, re.DOTALL)
    assert block, "no backup codes on the page"
    return re.findall(r"<code>([0-9A-Z-]+)</code>", block.group(1))


def continue_link(text: str) -> str:
    match = re.search(r'href="([^"]+)" id="continue"', text)
    assert match, "no continue link"
    return html.unescape(match.group(1))


@dataclass
class Pending:
    """A flow waiting on the /mfa page."""

    interaction_id: str
    csrf: str
    verifier: str
    page: httpx.Response


async def authorize_request(
    http: httpx.AsyncClient, client: AppClient, *, scope: str = "openid profile", extra: dict[str, str] | None = None
) -> tuple[httpx.Response, str]:
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT_URI, "scope": scope,
        "code_challenge": challenge, "code_challenge_method": "S256", "state": "s1",
    }
    params.update(extra or {})
    return await http.get("/authorize", params=params), verifier


async def to_second_step(
    http: httpx.AsyncClient, client: AppClient, user: Person, *, scope: str = "openid profile",
    extra: dict[str, str] | None = None,
) -> Pending:
    """/authorize → password → the /mfa page."""
    response, verifier = await authorize_request(http, client, scope=scope, extra=extra)
    assert response.status_code == 303 and response.headers["location"].startswith("/login"), response.text
    after_password = await sign_in(http, response.headers["location"], user)
    assert after_password.status_code == 303, after_password.text
    location = after_password.headers["location"]
    assert location.startswith("/mfa?i="), location
    page = await http.get(location)
    return Pending(form_field(page.text, "i"), form_field(page.text, "csrf"), verifier, page)


async def submit(http: httpx.AsyncClient, pending: Pending, *, code: str | None = None, backup_code: str | None = None) -> httpx.Response:
    data = {"i": pending.interaction_id, "csrf": pending.csrf}
    if code is not None:
        data["code"] = code
    if backup_code is not None:
        data["backup_code"] = backup_code
    return await http.post("/mfa", data=data)


async def follow_to_client(http: httpx.AsyncClient, response: httpx.Response) -> dict[str, str]:
    """Follow redirects (and continue links, consent) until the client's redirect URI; its query parameters."""
    for _ in range(8):
        if response.status_code == 200 and 'id="continue"' in response.text:
            response = await http.get(continue_link(response.text))
            continue
        assert response.status_code in (302, 303), (response.status_code, response.text[:500])
        location = response.headers["location"]
        if location.startswith(REDIRECT_URI):
            return query_of(location)
        if location.startswith("/consent"):
            page = await http.get(location)
            response = await http.post(
                "/consent", data={"i": form_field(page.text, "i"), "csrf": form_field(page.text, "csrf"), "decision": "allow"}
            )
        else:
            response = await http.get(location)
    raise AssertionError("too many redirects")
