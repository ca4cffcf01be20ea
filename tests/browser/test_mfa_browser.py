"""A real headless Chromium through TOTP enrolment, sign-in with a code and a backup code, replay, lock,
and the Spanish page (RFC 6238; pages usable on a phone). Screenshots go to test-artifacts/."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pyotp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, ViewportSize, async_playwright, expect

from authserver.app import build_services
from authserver.settings import load_settings
from authserver.storage.sql.migrate import upgrade
from tests.conftest import environ_for
from tests.support.factories import (
    REDIRECT_URI,
    AppClient,
    Person,
    make_client,
    make_user,
    pkce_pair,
)

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PHONE: ViewportSize = {"width": 390, "height": 844}


@dataclass
class Server:
    base: str
    client: AppClient
    person: Person


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Server]:
    root = tmp_path_factory.mktemp("browser")
    port = _free_port()
    url = f"sqlite+aiosqlite:///{root / 'browser.db'}"
    await asyncio.to_thread(upgrade, url)
    env = environ_for("sqlite", url, root, AUTHSERVER_SERVER__ISSUER=f"http://127.0.0.1:{port}")
    services = build_services(load_settings(env))
    try:
        await services.keys.ensure_active_keys()
        client = await make_client(services)
        person = await make_user(services)
    finally:
        await services.engine.dispose()
    process = subprocess.Popen(  # noqa: ASYNC220 - spawning is quick; we poll it asynchronously
        [sys.executable, "-m", "uvicorn", "authserver.cli:app_from_environment", "--factory",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as http:
            for _ in range(150):
                if process.poll() is not None:
                    raise AssertionError(process.stderr.read().decode() if process.stderr else "server exited")
                try:
                    if (await http.get(f"{base}/healthz", timeout=1)).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        yield Server(base, client, person)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    ARTIFACTS.mkdir(exist_ok=True)
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


async def _context(browser: Browser, locale: str) -> BrowserContext:
    context = await browser.new_context(locale=locale, viewport=PHONE, is_mobile=True, has_touch=True)
    # The client application is not running: answer its redirect URI here.
    await context.route("https://app.example/**", lambda route: route.fulfill(body="<h1>client app</h1>", content_type="text/html"))
    return context


def _authorize_url(server: Server) -> str:
    _, challenge = pkce_pair()
    query = {"response_type": "code", "client_id": server.client.client_id, "redirect_uri": REDIRECT_URI,
             "scope": "openid profile", "code_challenge": challenge, "code_challenge_method": "S256", "state": "b"}
    return f"{server.base}/authorize?{urlencode(query)}"


async def _password(page: Page, person: Person) -> None:
    await page.fill("#username", person.username)
    await page.fill("#password", person.password)
    await page.click("button[type=submit]")


async def _shot(page: Page, name: str) -> None:
    await page.screenshot(path=str(ARTIFACTS / f"mfa-{name}.png"), full_page=True)


async def test_totp_in_a_real_browser(server: Server, browser: Browser) -> None:
    # 1. Enrol from the account page, reading the secret from the page.
    context = await _context(browser, "en-US")
    page = await context.new_page()
    await page.goto(f"{server.base}/account")
    await _password(page, server.person)
    await page.click("#account-mfa-link")
    await page.click("#setup-totp")
    await expect(page.locator(".qr svg")).to_be_visible()
    secret = (await page.inner_text("#secret")).replace(" ", "")
    code_input = page.locator("#code")
    assert await code_input.get_attribute("autocomplete") == "one-time-code"
    assert await code_input.get_attribute("inputmode") == "numeric"
    await _shot(page, "1-enrol")
    await code_input.fill(pyotp.TOTP(secret).now())
    await page.click("#enrol-form button[type=submit]")
    codes = [c.strip() for c in await page.locator("#backup-codes code").all_inner_texts()]
    assert len(codes) == 10 and all(re.fullmatch(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", c) for c in codes)
    await expect(page.locator("#download-codes")).to_have_attribute("download", "cmipro-backup-codes.txt")
    await _shot(page, "2-backup-codes")
    await page.click("#continue")
    await expect(page.locator("#mfa-status")).to_have_attribute("data-enabled", "true")
    await expect(page.locator("#backup-remaining")).to_contain_text("10")
    await context.close()

    # 2. Sign in to the client with the password and the next code (the current one was spent confirming).
    code = pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30))
    context = await _context(browser, "en-US")
    page = await context.new_page()
    await page.goto(_authorize_url(server))
    await _password(page, server.person)
    await expect(page.locator("h1")).to_have_text("Enter the code from your authenticator app")
    await _shot(page, "3-second-step")
    await page.fill("#code", code)
    await page.click("#totp-form button[type=submit]")
    await page.wait_for_url(re.compile(r"^https://app\.example/callback\?code="))
    await context.close()

    # 3. The same code again is refused; a backup code works instead, once.
    context = await _context(browser, "en-US")
    page = await context.new_page()
    await page.goto(_authorize_url(server))
    await _password(page, server.person)
    await page.fill("#code", code)
    await page.click("#totp-form button[type=submit]")
    await expect(page.locator("#mfa-error")).to_contain_text("already used")
    await _shot(page, "4-replay-refused")
    await page.click("details.backup summary")
    await page.fill("#backup_code", codes[0].lower())
    await page.click("#backup-form button[type=submit]")
    await expect(page.locator("#backup-remaining")).to_contain_text("9")
    await _shot(page, "5-backup-code-used")
    await page.click("#continue")
    await page.wait_for_url(re.compile(r"^https://app\.example/callback\?code="))
    await context.close()

    # 4. The Spanish page (the default language, and what a Honduran phone asks for).
    context = await _context(browser, "es-HN")
    page = await context.new_page()
    await page.goto(_authorize_url(server))
    await expect(page.locator("h1")).to_have_text("Inicia sesión para continuar")
    await _password(page, server.person)
    await expect(page.locator("h1")).to_have_text("Ingresa el código de tu aplicación de autenticación")
    await expect(page.locator("details.backup summary")).to_have_text("¿Perdiste tu teléfono? Usa un código de respaldo")
    await _shot(page, "6-spanish")

    # 5. Guessing locks the second step, with a clear message.
    wrong = next(c for c in ("000000", "111111", "222222") if not pyotp.TOTP(secret).verify(c, valid_window=2))
    for _ in range(5):
        await page.fill("#code", wrong)
        await page.click("#totp-form button[type=submit]")
    await expect(page.locator("#mfa-error")).to_contain_text("bloqueado")
    await _shot(page, "7-locked")
    await page.fill("#code", pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30)))
    await page.click("#totp-form button[type=submit]")
    await expect(page.locator("#mfa-error")).to_contain_text("bloqueado")
    await context.close()
