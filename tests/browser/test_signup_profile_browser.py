"""Issue 14, second part, in a real browser (headless Chromium), in Spanish and English: sign-up with an
invitation code, the verification link read from a real SMTP server, the profile page (a new address,
re-verified by its own link, the old one told), and MFA recovery (password + a backup code, then a new
authenticator, the other sessions ending). Screenshots in test-artifacts/selfservice2-*.png."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
from playwright.async_api import Browser, BrowserContext, Page, expect

from authserver.app import build_services, create_app
from authserver.mfa.service import is_enrolled
from authserver.services import Services
from authserver.settings import load_settings
from tests.browser.conftest import ARTIFACTS, _serve_in_thread, loopback_socket
from tests.conftest import environ_for, fast_passwords
from tests.support.factories import make_user
from tests.support.mfa import enrol
from tests.support.smtp import Inbox, smtp_server

pytestmark = pytest.mark.browser

PASSWORD = "el Ulúa sube de noche"
TEXTS = {
    "es": {"verify_subject": "Confirma tu correo de CMIPRO", "notice_subject": "Aviso de seguridad de tu cuenta de CMIPRO",
           "unverified": "Sin confirmar", "verified": "Confirmado", "lost": "¿Perdiste tu teléfono?",
           "taken": "no está disponible", "hello": "Hola"},
    "en": {"verify_subject": "Confirm your CMIPRO e-mail address", "notice_subject": "Security notice for your CMIPRO account",
           "unverified": "Not confirmed", "verified": "Confirmed", "lost": "Lost your phone?",
           "taken": "not available", "hello": "Hello"},
}


@dataclass
class SignupServer:
    url: str
    backend: str
    services: Services
    inbox: Inbox


@pytest.fixture(scope="module")
def signup_inbox() -> Iterator[Inbox]:
    yield from smtp_server()


@pytest.fixture(scope="module")
async def signup_server(database_url: str, tmp_root: Path, signup_inbox: Inbox) -> AsyncIterator[SignupServer]:
    backend = "postgres" if database_url.startswith("postgresql") else "sqlite"
    sock, url = loopback_socket()
    settings = load_settings(environ_for(
        backend, database_url, tmp_root, AUTHSERVER_SERVER__ISSUER=url, AUTHSERVER_SELF_SERVICE__SIGNUP="true",
        AUTHSERVER_SELF_SERVICE__SIGNUP_REQUIRES_INVITATION="true", **signup_inbox.env(),
    ))
    services = build_services(settings, passwords=fast_passwords())
    server, thread = _serve_in_thread(create_app(settings, passwords=fast_passwords()), sock)
    try:
        yield SignupServer(url, backend, services, signup_inbox)
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


async def shot(page: Page, server: SignupServer, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"selfservice2-{name}-{server.backend}.png"), full_page=True)


async def sign_in(page: Page, username: str, password: str) -> None:
    await page.fill("#username", username)
    await page.fill("#password", password)
    async with page.expect_navigation():
        await page.click("form[action='/login'] button[type=submit]")


async def fill_signup(page: Page, *, invitation: str, username: str, email: str) -> None:
    await page.fill("#invitation", invitation)
    await page.fill("#username", username)
    await page.fill("#email", email)
    await page.fill("#name", "Lucía Martínez")
    await page.fill("#new-password", PASSWORD)
    await page.fill("#confirm-password", PASSWORD)


@pytest.mark.parametrize(("browser_locale", "lang"), [("de-DE", "es"), ("en-US", "en")])
async def test_sign_up_verify_and_change_the_address(signup_server: SignupServer, browser: Browser, browser_locale: str, lang: str) -> None:
    server, text = signup_server, TEXTS[lang]
    made = await server.services.invitations.create(ttl=3600, max_uses=1, created_by="test")
    taken = await make_user(server.services)
    username = f"{lang}{secrets.token_hex(4)}"
    email = f"{username}@example.org"
    context = await new_context(browser, browser_locale)
    page = await context.new_page()

    await page.goto(f"{server.url}/account")
    await page.click("#signup-link")
    assert await page.locator("html").get_attribute("lang") == lang
    await fill_signup(page, invitation=made.code, username=taken.username, email=email)
    await page.click("#signup-form button[type=submit]")
    await expect(page.locator("#signup-error")).to_contain_text(text["taken"])
    # What was typed stays, but not the taken username nor the passwords.
    await expect(page.locator("#email")).to_have_value(email)
    await fill_signup(page, invitation=made.code, username=username, email=email)
    await shot(page, server, f"signup-{lang}")
    await page.click("#signup-form button[type=submit]")
    await expect(page.locator("#notice")).to_have_attribute("data-notice", "signup-done")
    await shot(page, server, f"signup-done-{lang}")

    [mail] = await server.inbox.wait_for(email)
    assert mail.message["Subject"] == text["verify_subject"]
    link = mail.link("/email/verify")
    assert f'href="{link}"' in mail.part("html")
    await page.goto(link)
    await shot(page, server, f"verify-{lang}")
    await page.click("#verify-form button[type=submit]")
    await expect(page.locator("#notice")).to_have_attribute("data-notice", "verify-done")
    await page.goto(link)
    await expect(page.locator("#notice")).to_have_attribute("data-notice", "invalid-link")

    await page.click("#notice-link")  # to the profile: sign in first
    await sign_in(page, username, PASSWORD)
    await expect(page.locator("#email-state")).to_have_attribute("data-verified", "true")
    await expect(page.locator("#name")).to_have_value("Lucía Martínez")
    new_email = f"{username}.nuevo@example.org"
    await page.fill("#email", new_email)
    await page.click("#profile-form button[type=submit]")
    await expect(page.locator("#profile-error")).to_be_visible()  # the current password is needed
    await page.fill("#email", new_email)
    await page.fill("#current-password", PASSWORD)
    await page.click("#profile-form button[type=submit]")
    await expect(page.locator("#profile-message")).to_contain_text(new_email)
    await expect(page.locator("#email-state")).to_contain_text(text["unverified"])
    await shot(page, server, f"profile-{lang}")
    notices = await server.inbox.wait_for(email, count=2)
    assert notices[1].message["Subject"] == text["notice_subject"]
    [second] = await server.inbox.wait_for(new_email)
    await page.goto(second.link("/email/verify"))
    await page.click("#verify-form button[type=submit]")
    await page.click("#notice-link")
    await expect(page.locator("#email-state")).to_contain_text(text["verified"])
    account = await server.services.accounts.get_by_username(username)
    assert account is not None and account.email == new_email and account.email_verified
    await context.close()


@pytest.mark.parametrize(("browser_locale", "lang"), [("es-HN", "es"), ("en-GB", "en")])
async def test_a_lost_phone_is_replaced_after_a_backup_code(signup_server: SignupServer, browser: Browser, browser_locale: str, lang: str) -> None:
    server, text = signup_server, TEXTS[lang]
    person = await make_user(server.services)
    enrolled = await enrol(server.services, person.account_id)
    other = await new_context(browser, browser_locale)  # a second browser, signed in with the old phone
    other_page = await other.new_page()
    await other_page.goto(f"{server.url}/account")
    await sign_in(other_page, person.username, person.password)
    await other_page.click("details.backup summary")
    await other_page.fill("#backup_code", enrolled.backup_codes[1])
    await other_page.click("#backup-form button[type=submit]")
    await other_page.click("#continue")
    await expect(other_page.locator("h1")).to_contain_text(text["hello"])

    context = await new_context(browser, browser_locale)
    page = await context.new_page()
    await page.goto(f"{server.url}/account")
    await sign_in(page, person.username, person.password)
    await page.click("details.backup summary")
    await page.fill("#backup_code", enrolled.backup_codes[0])
    await page.click("#backup-form button[type=submit]")
    await expect(page.locator("#recover h2")).to_have_text(text["lost"])
    await shot(page, server, f"recover-offer-{lang}")
    await page.click("#recover-form button[type=submit]")
    secret = (await page.inner_text("#secret")).replace(" ", "")
    assert secret != enrolled.secret
    account = await server.services.accounts.get(person.account_id)
    assert account is not None and not is_enrolled(account)
    await shot(page, server, f"recover-enrol-{lang}")
    await page.fill("#code", pyotp.TOTP(secret).now())
    await page.click("#enrol-form button[type=submit]")
    codes = [c.strip() for c in await page.locator("#backup-codes code").all_inner_texts()]
    assert len(codes) == 10 and enrolled.backup_codes[2] not in codes
    account = await server.services.accounts.get(person.account_id)
    assert account is not None and is_enrolled(account)
    # The browser with the old phone's session was signed out.
    await other_page.goto(f"{server.url}/account")
    await expect(other_page.locator("#username")).to_be_visible()
    mails = await server.inbox.wait_for(f"{person.username}@example.org", count=2)
    assert all(m.message["Subject"] == text["notice_subject"] for m in mails)  # the account has no locale: the page's
    await context.close()
    await other.close()
