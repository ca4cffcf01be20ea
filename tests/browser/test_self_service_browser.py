"""Issue 14 in a real browser (headless Chromium): password reset by the mailed link (the mail read from
a real SMTP server), password change, the apps page, both languages; and CORS proven from a page on the
client app's origin doing fetch() to /token, /userinfo and /revoke (code + PKCE + refresh), refused from
another origin and with credentials. Screenshots in test-artifacts/selfservice-*.png."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from authserver.app import build_services, create_app
from authserver.services import Services
from authserver.settings import load_settings
from tests.browser.conftest import ARTIFACTS, ClientApp, _serve_in_thread, loopback_socket
from tests.conftest import environ_for, fast_passwords
from tests.support.factories import AppClient, Person, make_client, make_user, pkce_pair, query_of
from tests.support.smtp import Inbox, smtp_server

pytestmark = pytest.mark.browser

NEW_PASSWORD = "el Ulúa sube de noche"
TEXTS = {
    "es": {"forgot": "¿Olvidaste tu contraseña?", "sent": "te enviamos un enlace", "subject": "Restablecer tu contraseña de CMIPRO",
           "done": "Contraseña guardada", "hello": "Hola, "},
    "en": {"forgot": "Forgot your password?", "sent": "we sent it a link", "subject": "Reset your CMIPRO password",
           "done": "Password saved", "hello": "Hello, "},
}


@dataclass
class MailServer:
    url: str
    backend: str
    services: Services
    inbox: Inbox
    spa: AppClient


@pytest.fixture(scope="module")
def module_inbox() -> Iterator[Inbox]:
    yield from smtp_server()


@pytest.fixture(scope="module")
async def mail_server(database_url: str, tmp_root: Path, module_inbox: Inbox, client_app_server: ClientApp) -> AsyncIterator[MailServer]:
    """A live server that sends mail to the test's SMTP server; the browser app (a public client on the
    client app's origin) is registered before it starts, so its origin is in the CORS set from the start."""
    backend = "postgres" if database_url.startswith("postgresql") else "sqlite"
    sock, url = loopback_socket()
    settings = load_settings(environ_for(backend, database_url, tmp_root, AUTHSERVER_SERVER__ISSUER=url, **module_inbox.env()))
    services = build_services(settings, passwords=fast_passwords())
    spa = await make_client(
        services, client_type="public", first_party=False, name="Mapa SPA", redirect_uris=[client_app_server.callback],
        grant_types=["authorization_code", "refresh_token"],
    )
    server, thread = _serve_in_thread(create_app(settings, passwords=fast_passwords()), sock)
    try:
        yield MailServer(url, backend, services, module_inbox, spa)
    finally:
        await services.cache.close()
        await services.engine.dispose()
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


async def new_context(browser: Browser, locale: str) -> BrowserContext:
    context = await browser.new_context(locale=locale, viewport={"width": 360, "height": 740})
    context.set_default_timeout(10_000)
    return context


async def shot(page: Page, server: MailServer, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"selfservice-{name}-{server.backend}.png"), full_page=True)


async def sign_in(page: Page, username: str, password: str) -> None:
    await page.fill("#username", username)
    await page.fill("#password", password)
    async with page.expect_navigation():
        await page.click("form[action='/login'] button[type=submit]")


@pytest.mark.parametrize(("browser_locale", "lang"), [("de-DE", "es"), ("en-US", "en")])
async def test_password_reset_by_the_mailed_link(mail_server: MailServer, browser: Browser, browser_locale: str, lang: str) -> None:
    server, text = mail_server, TEXTS[lang]
    person = await make_user(server.services)
    email = f"{person.username}@example.org"
    context = await new_context(browser, browser_locale)
    page = await context.new_page()
    await page.goto(f"{server.url}/account")
    await expect(page.locator("#forgot-link")).to_have_text(text["forgot"])
    await page.click("#forgot-link")
    await page.fill("#email", email)
    await shot(page, server, f"forgot-{lang}")
    await page.click("#forgot-form button[type=submit]")
    await expect(page.locator("#reset-sent")).to_contain_text(text["sent"])
    [mail] = await server.inbox.wait_for(email)
    assert mail.message["Subject"] == text["subject"]
    assert mail.message.get_content_type() == "multipart/alternative"
    link = mail.link("/password/reset")
    assert link.startswith(f"{server.url}/password/reset?token=pr_")
    assert f'href="{link}"' in mail.part("html")

    await page.goto(link)
    assert await page.locator("html").get_attribute("lang") == lang
    await page.fill("#new-password", NEW_PASSWORD)
    await page.fill("#confirm-password", NEW_PASSWORD + "?")
    await page.click("#reset-form button[type=submit]")
    await expect(page.locator("#reset-error")).to_be_visible()
    await page.fill("#new-password", NEW_PASSWORD)
    await page.fill("#confirm-password", NEW_PASSWORD)
    await shot(page, server, f"reset-{lang}")
    await page.click("#reset-form button[type=submit]")
    await expect(page.locator("h1")).to_have_text(text["done"])
    await page.click("#notice-link")
    await sign_in(page, person.username, NEW_PASSWORD)
    await expect(page.locator("h1")).to_contain_text(text["hello"].strip(", "))
    await page.goto(link)
    await expect(page.locator("#notice")).to_have_attribute("data-notice", "invalid-link")
    await context.close()


async def test_password_change_in_english(mail_server: MailServer, browser: Browser) -> None:
    server = mail_server
    person = await make_user(server.services)
    context = await new_context(browser, "en-US")
    page = await context.new_page()
    await page.goto(f"{server.url}/account")
    await sign_in(page, person.username, person.password)
    await page.click("#account-password-link")
    await expect(page.locator("h1")).to_have_text("Change password")
    await page.fill("#current-password", person.password)
    await page.fill("#new-password", NEW_PASSWORD)
    await page.fill("#confirm-password", NEW_PASSWORD)
    await page.click("#password-form button[type=submit]")
    await expect(page.locator("#password-message")).to_have_text("Password changed. Your other sessions were signed out.")
    await shot(page, server, "password-changed-en")
    await page.goto(f"{server.url}/account")  # this session lives on
    await expect(page.locator("#account-apps-link")).to_be_visible()
    await context.close()


def authorize_url(server: MailServer, app: ClientApp, challenge: str) -> str:
    return f"{server.url}/authorize?" + urlencode({
        "response_type": "code", "client_id": server.spa.client_id, "redirect_uri": app.callback,
        "scope": "openid profile offline_access", "code_challenge": challenge, "code_challenge_method": "S256",
        "state": secrets.token_hex(4),
    })


SPA_FLOW = """async ({issuer, clientId, code, verifier, redirectUri}) => {
  const form = (values) => ({method: "POST", body: new URLSearchParams(values)});
  const token = await fetch(issuer + "/token", form({grant_type: "authorization_code", code, code_verifier: verifier,
                                                    client_id: clientId, redirect_uri: redirectUri}));
  const tokens = await token.json();
  const info = await fetch(issuer + "/userinfo", {headers: {Authorization: "Bearer " + tokens.access_token}});
  const claims = await info.json();
  const refreshed = await fetch(issuer + "/token", form({grant_type: "refresh_token", refresh_token: tokens.refresh_token, client_id: clientId}));
  const next = await refreshed.json();
  return {tokenStatus: token.status, infoStatus: info.status, sub: claims.sub, refreshStatus: refreshed.status,
          refreshToken: next.refresh_token, accessToken: next.access_token};
}"""

FETCH = """async ({url, init}) => {
  try { const r = await fetch(url, init); return {status: r.status, body: await r.text()}; }
  catch (e) { return {error: String(e)}; }
}"""


async def spa_tokens(server: MailServer, app: ClientApp, context: BrowserContext, person: Person) -> tuple[Page, dict[str, Any]]:
    """The browser app's sign-in: our pages, then code + PKCE + refresh by fetch() from the app's origin."""
    page = await context.new_page()
    verifier, challenge = pkce_pair()
    await page.goto(authorize_url(server, app, challenge))
    await sign_in(page, person.username, person.password)
    async with page.expect_navigation(url=f"{app.callback}**"):
        await page.click("button[value=allow]")
    code = query_of(page.url)["code"]
    result = await page.evaluate(SPA_FLOW, {
        "issuer": server.url, "clientId": server.spa.client_id, "code": code, "verifier": verifier, "redirectUri": app.callback,
    })
    return page, result


async def test_a_browser_app_on_its_own_origin_uses_token_userinfo_and_revoke(
    mail_server: MailServer, client_app: ClientApp, context: BrowserContext
) -> None:
    server, app = mail_server, client_app
    person = await make_user(server.services)
    page, result = await spa_tokens(server, app, context, person)
    assert result["tokenStatus"] == 200 and result["infoStatus"] == 200 and result["sub"] == person.account_id
    assert result["refreshStatus"] == 200 and result["refreshToken"].startswith("rt_")
    revoked = await page.evaluate(FETCH, {"url": f"{server.url}/revoke", "init": {
        "method": "POST", "body": f"token={result['refreshToken']}&client_id={server.spa.client_id}",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"}}})
    assert revoked["status"] == 200
    # With credentials the browser refuses the answer: we never send Access-Control-Allow-Credentials.
    with_cookies = await page.evaluate(FETCH, {"url": f"{server.url}/userinfo", "init": {
        "credentials": "include", "headers": {"Authorization": f"Bearer {result['accessToken']}"}}})
    assert "error" in with_cookies and "Failed to fetch" in with_cookies["error"]
    # Another origin (the same app under another host name) gets nothing it can read.
    other = await context.new_page()
    await other.goto(app.callback.replace("127.0.0.1", "localhost"))
    refused = await other.evaluate(FETCH, {"url": f"{server.url}/userinfo", "init": {
        "headers": {"Authorization": f"Bearer {result['accessToken']}"}}})
    assert "error" in refused
    refused = await other.evaluate(FETCH, {"url": f"{server.url}/token", "init": {"method": "POST", "body": "grant_type=x"}})
    assert "error" in refused


async def test_withdrawing_the_apps_consent_in_spanish_cuts_it_off(
    mail_server: MailServer, client_app: ClientApp, context: BrowserContext
) -> None:
    server, app = mail_server, client_app
    person = await make_user(server.services)
    page, result = await spa_tokens(server, app, context, person)
    assert result["refreshStatus"] == 200
    account = await context.new_page()
    await account.goto(f"{server.url}/account")
    await account.click("#account-apps-link")
    await expect(account.locator("h1")).to_have_text("Aplicaciones con acceso")
    entry = account.locator(f'li[data-client="{server.spa.client_id}"]')
    await expect(entry).to_contain_text("Mapa SPA")
    await shot(account, server, "apps-es")
    await entry.locator("button").click()
    await expect(account.locator("#apps-message")).to_have_text("Retiraste el acceso de Mapa SPA.")
    await expect(account.locator(f'li[data-client="{server.spa.client_id}"]')).to_have_count(0)
    refused = await page.evaluate(FETCH, {"url": f"{server.url}/token", "init": {
        "method": "POST", "body": f"grant_type=refresh_token&refresh_token={result['refreshToken']}&client_id={server.spa.client_id}",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"}}})
    assert refused["status"] == 400 and re.search(r'"error":\s*"invalid_grant"', refused["body"])
