"""The pages in a real browser (headless Chromium): the code flow with PKCE through login and consent,
error texts, languages, security headers and the session cookie (RFC 6749 §4.1, RFC 7636, RFC 9207,
RFC 9700 §4.16 clickjacking).

Each test runs against PostgreSQL + Redis and SQLite + the in-process cache (one live server per backend).
The third-party client is a tiny HTTP server on another loopback port that records what reaches its
redirect URI.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

import httpx
import jwt as pyjwt
import pytest
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page

from tests.browser.conftest import ARTIFACTS, ClientApp, LiveServer
from tests.support.factories import AppClient, Person, make_client, make_user, pkce_pair, query_of

pytestmark = pytest.mark.browser


async def open_page(context: BrowserContext) -> tuple[Page, list[str]]:
    """A page, and the script errors and CSP violations it reports on the console."""
    page = await context.new_page()
    console: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # Chromium asks every origin for /favicon.ico; the pages do not declare one (a 404 there is harmless).
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            console.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: console.append(str(error)))
    return page, console


async def third_party_client(live: LiveServer, app: ClientApp) -> AppClient:
    return await make_client(
        live.services, client_type="public", first_party=False, name="Mapa de Alertas",
        redirect_uris=[app.callback], grant_types=["authorization_code", "refresh_token"],
    )


def authorize_url(live: LiveServer, app: ClientApp, client: AppClient, challenge: str, **extra: str) -> str:
    params = {
        "response_type": "code", "client_id": client.client_id, "redirect_uri": app.callback,
        "scope": "openid profile read:levels", "code_challenge": challenge, "code_challenge_method": "S256",
        "state": "st-" + secrets.token_hex(4), "nonce": "n-" + secrets.token_hex(4),
    }
    params.update(extra)
    return f"{live.url}/authorize?{urlencode(params)}"


async def screenshot(page: Page, live: LiveServer, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}-{live.backend}.png"), full_page=True)


async def sign_in(page: Page, user: Person, password: str | None = None) -> None:
    await page.fill("#username", user.username)
    await page.fill("#password", password or user.password)
    async with page.expect_navigation():
        await page.click("button[type=submit]")


async def redeem(live: LiveServer, app: ClientApp, client: AppClient, code: str, verifier: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=live.url) as http:
        return await http.post("/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": app.callback,
            "code_verifier": verifier, "client_id": client.client_id,
        })


async def test_code_flow_with_pkce_through_login_and_consent(
    live_server: LiveServer, client_app: ClientApp, context: BrowserContext
) -> None:
    live, app = live_server, client_app
    client, user = await third_party_client(live, app), await make_user(live.services)
    page, console = await open_page(context)
    verifier, challenge = pkce_pair()

    await page.goto(authorize_url(live, app, client, challenge, state="state-123", nonce="nonce-456"))
    assert page.url.startswith(f"{live.url}/login?i=")
    assert await page.locator("h1").inner_text() == "Inicia sesión para continuar"
    assert "Mapa de Alertas" in await page.locator("main").inner_text()
    await screenshot(page, live, "login")
    await sign_in(page, user)

    assert page.url.startswith(f"{live.url}/consent?i=")
    assert await page.locator("h1").inner_text() == "Mapa de Alertas quiere acceder a tu cuenta"
    scopes = await page.locator("li[data-scope]").evaluate_all("items => items.map(i => i.dataset.scope)")
    assert scopes == ["openid", "profile", "read:levels"]
    await screenshot(page, live, "consent")
    async with page.expect_navigation(url=f"{app.callback}**"):
        await page.click("button[value=allow]")

    assert len(app.hits) == 1
    response = query_of(app.hits[0])
    assert set(response) == {"code", "state", "iss"}
    assert response["state"] == "state-123"
    assert response["iss"] == live.url
    assert console == [], "no CSP violation or script error on our pages"

    token = await redeem(live, app, client, response["code"], verifier)
    assert token.status_code == 200, token.text
    body = token.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "openid profile read:levels"
    async with httpx.AsyncClient(base_url=live.url) as http:
        keys = pyjwt.PyJWKSet.from_dict((await http.get("/jwks")).json())
    header = pyjwt.get_unverified_header(body["id_token"])
    claims = pyjwt.decode(
        body["id_token"], keys[header["kid"]].key, algorithms=[header["alg"]], audience=client.client_id, issuer=live.url,
    )
    assert claims["sub"] == user.account_id and claims["nonce"] == "nonce-456"
    again = await redeem(live, app, client, response["code"], verifier)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_denying_consent_returns_access_denied(
    live_server: LiveServer, client_app: ClientApp, context: BrowserContext
) -> None:
    live, app = live_server, client_app
    client, user = await third_party_client(live, app), await make_user(live.services)
    page, _ = await open_page(context)
    await page.goto(authorize_url(live, app, client, pkce_pair()[1], state="deny-me"))
    await sign_in(page, user)
    async with page.expect_navigation(url=f"{app.callback}**"):
        await page.click("button[value=deny]")
    assert query_of(app.hits[0]) == {"error": "access_denied", "error_description": "The user denied the request.",
                                     "state": "deny-me", "iss": live.url}


async def test_a_code_from_the_browser_needs_its_own_verifier(
    live_server: LiveServer, client_app: ClientApp, context: BrowserContext
) -> None:
    live, app = live_server, client_app
    client, user = await third_party_client(live, app), await make_user(live.services)
    page, _ = await open_page(context)
    await page.goto(authorize_url(live, app, client, pkce_pair()[1]))
    await sign_in(page, user)
    async with page.expect_navigation(url=f"{app.callback}**"):
        await page.click("button[value=allow]")
    other_verifier, _ = pkce_pair()
    token = await redeem(live, app, client, query_of(app.hits[0])["code"], other_verifier)
    assert token.status_code == 400 and token.json()["error"] == "invalid_grant"


async def test_wrong_password_shows_the_error_and_sets_no_session(
    live_server: LiveServer, client_app: ClientApp, context: BrowserContext
) -> None:
    live, app = live_server, client_app
    client, user = await third_party_client(live, app), await make_user(live.services)
    page, _ = await open_page(context)
    await page.goto(authorize_url(live, app, client, pkce_pair()[1]))
    await sign_in(page, user, password="not the right password")

    assert page.url == f"{live.url}/login"
    error = page.locator("#login-error")
    assert await error.inner_text() == "Usuario o contraseña incorrectos."
    assert await error.get_attribute("role") == "alert"
    assert await page.input_value("#username") == user.username
    assert await page.input_value("#password") == ""
    assert [c["name"] for c in await context.cookies(live.url) if "session" in c["name"]] == []
    await screenshot(page, live, "login-wrong-password")

    await sign_in(page, user)  # the same form works on the second try
    assert page.url.startswith(f"{live.url}/consent?i=")
    assert app.hits == []


async def test_session_cookie_is_httponly_and_samesite_lax(
    live_server: LiveServer, client_app: ClientApp, context: BrowserContext
) -> None:
    live, app = live_server, client_app
    client, user = await third_party_client(live, app), await make_user(live.services)
    page, _ = await open_page(context)
    await page.goto(authorize_url(live, app, client, pkce_pair()[1]))
    await sign_in(page, user)
    cookies = await context.cookies(live.url)
    assert sorted(c["name"] for c in cookies) == ["authserver_browser", "authserver_session"]
    for cookie in cookies:  # the session, and the browser id that binds sign-in forms to this browser
        assert cookie["httpOnly"] is True
        assert cookie["sameSite"] == "Lax"
        assert cookie["path"] == "/"
        assert cookie["secure"] is False  # plain http on 127.0.0.1; an https issuer gets __Host- and Secure
    assert await page.evaluate("document.cookie") == "", "scripts cannot read the session"


async def test_spanish_is_the_default_language(
    live_server: LiveServer, client_app: ClientApp, context: BrowserContext
) -> None:
    live, app = live_server, client_app
    client = await third_party_client(live, app)
    page, _ = await open_page(context)  # Accept-Language: de-DE, which the pages do not speak
    await page.goto(authorize_url(live, app, client, pkce_pair()[1]))
    assert await page.get_attribute("html", "lang") == "es"
    assert await page.title() == "Iniciar sesión · CMIPRO"
    assert await page.locator("label[for=username]").inner_text() == "Usuario"
    assert await page.locator("label[for=password]").inner_text() == "Contraseña"
    assert await page.locator("button[type=submit]").inner_text() == "Entrar"


async def test_english_with_ui_locales(live_server: LiveServer, client_app: ClientApp, context: BrowserContext) -> None:
    live, app = live_server, client_app
    client = await third_party_client(live, app)
    page, _ = await open_page(context)
    await page.goto(authorize_url(live, app, client, pkce_pair()[1], ui_locales="en-US es"))
    assert await page.get_attribute("html", "lang") == "en"
    assert await page.title() == "Sign in · CMIPRO"
    assert await page.locator("label[for=username]").inner_text() == "Username"
    assert await page.locator("button[type=submit]").inner_text() == "Sign in"
    await screenshot(page, live, "login-en")


async def test_english_with_accept_language_and_ui_locales_wins(
    live_server: LiveServer, client_app: ClientApp, browser: Browser
) -> None:
    live, app = live_server, client_app
    client = await third_party_client(live, app)
    english = await browser.new_context(locale="en-US")
    try:
        page, _ = await open_page(english)
        await page.goto(authorize_url(live, app, client, pkce_pair()[1]))
        assert await page.locator("h1").inner_text() == "Sign in to continue"
        await page.goto(authorize_url(live, app, client, pkce_pair()[1], ui_locales="es-HN"))
        assert await page.locator("h1").inner_text() == "Inicia sesión para continuar"
    finally:
        await english.close()


async def test_unknown_client_shows_an_error_page_and_never_redirects(
    live_server: LiveServer, client_app: ClientApp, context: BrowserContext
) -> None:
    live, app = live_server, client_app
    page, _ = await open_page(context)
    url = f"{live.url}/authorize?" + urlencode({
        "response_type": "code", "client_id": "no-such-client-" + secrets.token_hex(4), "redirect_uri": app.callback,
        "scope": "openid", "code_challenge": pkce_pair()[1], "code_challenge_method": "S256", "state": "s",
    })
    response = await page.goto(url)
    assert response is not None
    assert response.status == 400
    assert "location" not in await response.all_headers()
    assert response.request.redirected_from is None
    assert page.url == url
    assert await page.locator("#error-message").inner_text() == (
        "La aplicación que te envió aquí no está registrada o está deshabilitada."
    )
    assert app.hits == []
    await screenshot(page, live, "error-unknown-client")


async def test_unregistered_redirect_uri_shows_an_error_page(
    live_server: LiveServer, client_app: ClientApp, context: BrowserContext
) -> None:
    live, app = live_server, client_app
    client = await third_party_client(live, app)
    page, _ = await open_page(context)
    response = await page.goto(authorize_url(live, app, client, pkce_pair()[1], redirect_uri=f"{app.url}/elsewhere"))
    assert response is not None and response.status == 400
    assert "location" not in await response.all_headers()
    assert await page.locator("#error-message").inner_text() == "La dirección de retorno de la aplicación no está registrada."
    assert app.hits == []


async def test_security_headers_on_pages(live_server: LiveServer, client_app: ClientApp, context: BrowserContext) -> None:
    live, app = live_server, client_app
    client = await third_party_client(live, app)
    page, console = await open_page(context)
    response = await page.goto(authorize_url(live, app, client, pkce_pair()[1]))
    assert response is not None and response.url.startswith(f"{live.url}/login")
    headers = await response.all_headers()
    csp = headers["content-security-policy"]
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";")}
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert directives["default-src"] == "default-src 'none'"
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert "no-store" in headers["cache-control"]
    # The stylesheet is allowed by the policy and loaded; nothing was blocked.
    assert await page.evaluate("document.styleSheets.length") == 1
    assert await page.evaluate("document.styleSheets[0].cssRules.length") > 0
    assert console == []


async def test_login_page_cannot_be_framed(live_server: LiveServer, client_app: ClientApp, context: BrowserContext) -> None:
    live, app = live_server, client_app
    client = await third_party_client(live, app)
    page, console = await open_page(context)
    target = authorize_url(live, app, client, pkce_pair()[1])
    async with page.expect_event("console", predicate=lambda m: "frame" in m.text.lower()):
        await page.goto(f"{app.url}/frame?{urlencode({'src': target})}")
    assert await page.frame_locator("#victim").locator("#password").count() == 0
    assert any("frame-ancestors" in text or "X-Frame-Options" in text for text in console), console
    await screenshot(page, live, "framing-blocked")
