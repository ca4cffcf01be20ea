"""Rendering pages: Jinja2 templates with autoescape, the message catalogue, the session cookie, the HTML
channel's error boundary (``html_page``) and the one CSRF mechanism of every form (``form_token``)."""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from authserver.endpoints._http import HTML, mark_channel, read_form, unexpected
from authserver.errors import OAuthError
from authserver.middleware.body_limit import BodyTooLarge
from authserver.settings import Settings
from authserver.web.i18n import choose_locale, translate

if TYPE_CHECKING:
    from authserver.interaction.policy import Interaction

_TEMPLATES = Path(__file__).parent / "templates"
PAGE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}
log = logging.getLogger("authserver.web")
# The last resort when even the error page cannot be rendered (templates or settings broken).
BARE_ERROR_PAGE = (
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Error</title></head>"
    "<body><h1>Something went wrong</h1><p>An unexpected error occurred.</p></body></html>"
)


def create_environment() -> Environment:
    return Environment(loader=FileSystemLoader(_TEMPLATES), autoescape=select_autoescape(["html"]), auto_reload=False)


def request_locale(request: Request, ui_locales: str | None = None) -> str:
    settings: Settings = request.app.state.services.settings
    return choose_locale(ui_locales, request.headers.get("accept-language"), settings.login.default_locale)


def render(request: Request, template: str, *, locale: str, status_code: int = 200, **context: Any) -> Response:
    environment: Environment = request.app.state.templates
    html = environment.get_template(template).render(
        locale=locale, t=lambda key, **values: translate(locale, key, **values), **context
    )
    return HTMLResponse(html, status_code=status_code, headers=dict(PAGE_HEADERS))


def error_page(request: Request, message_key: str, *, status_code: int = 400, code: str | None = None, locale: str | None = None) -> Response:
    """An error shown to the person, never a redirect (RFC 6749 §4.1.2.1)."""
    locale = locale or request_locale(request)
    response = render(
        request, "error.html", locale=locale, status_code=status_code,
        message=translate(locale, message_key), code=code,
    )
    if status_code == 503:
        response.headers["Retry-After"] = "5"
    return response


class PageError(Exception):
    """An error shown on our own page (the HTML channel): a catalogue key and a status."""

    def __init__(self, message_key: str, status_code: int = 400) -> None:
        super().__init__(message_key)
        self.message_key = message_key
        self.status_code = status_code


# OAuth errors that reach a page's boundary: the catalogue key the person reads.
_PAGE_KEYS = {
    "invalid_request": "error.invalid_request",
    "invalid_client": "error.invalid_client",
    "rate_limited": "error.too_many_requests",
    "temporarily_unavailable": "error.unavailable",
    "server_error": "error.server",
}

Page = Callable[[Request], Awaitable[Response]]


def _safe_error_page(request: Request, message_key: str, status_code: int) -> Response:
    try:
        return error_page(request, message_key, status_code=status_code)
    except Exception:  # the page renderer itself failed: a fixed page, still HTML
        log.exception("the error page could not be rendered on %s", request.url.path)
        return HTMLResponse(BARE_ERROR_PAGE, status_code=status_code, headers=dict(PAGE_HEADERS))


def html_page(endpoint: Page) -> Page:
    """Error boundary of the HTML channel: ``PageError`` and the OAuth error family as our error page,
    bad input that reached the database a 400 page, an outage a 503 page, anything else a logged 500
    page (with the request id in the log); never plain text, never a traceback."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        try:
            return await endpoint(request)
        except PageError as error:
            return _safe_error_page(request, error.message_key, error.status_code)
        except BodyTooLarge:
            raise
        except OAuthError as error:
            response = _safe_error_page(request, _PAGE_KEYS.get(error.error, "error.invalid_request"), error.status_code)
            response.headers.update(error.headers)
            return response
        except Exception as error:  # noqa: BLE001 - the channel's catch-all
            answer = unexpected(request, error)
            response = _safe_error_page(request, _PAGE_KEYS.get(answer.error, "error.server"), answer.status_code)
            if answer.status_code == 503:
                response.headers["Retry-After"] = "5"
            return response

    return mark_channel(wrapper, HTML)


def form_token(secret: str | None, purpose: str) -> str:
    """The CSRF value of a form: SHA-256 of a label and an HttpOnly cookie's value (the session cookie on
    account pages, the browser id on pages before sign-in). Only pages we rendered for that browser hold
    it; nothing is stored."""
    return hashlib.sha256(f"authserver-{purpose}:{secret or ''}".encode()).hexdigest() if secret else ""


def check_form_token(secret: str | None, purpose: str, presented: str | None) -> bool:
    expected = form_token(secret, purpose)
    return bool(expected) and hmac.compare_digest(expected, presented or "")


async def checked_form(request: Request, secret: str | None, purpose: str) -> dict[str, str] | Response:
    """A strict form whose CSRF value matches ``form_token(secret, purpose)``; else a 400/403 page."""
    try:
        form = await read_form(request)
    except OAuthError:
        return error_page(request, "error.invalid_request")
    if not check_form_token(secret, purpose, form.get("csrf")):
        return error_page(request, "error.csrf", status_code=403)
    return form


# Forms inside an interaction (login, consent, second step, enrolment in a flow) use the same value,
# keyed by the browser id cookie and the interaction; the interaction must also be this browser's own
# (login CSRF, OIDC Core §3.1.2.3). Account forms key it by the session cookie (``form_token(cookie, …)``).


def interaction_form_token(request: Request, interaction: Interaction) -> str:
    return form_token(browser_id(request), f"interaction:{interaction.interaction_id}")


def check_interaction_form(request: Request, interaction: Interaction, presented: str | None) -> bool:
    return same_browser(request, interaction.browser) and check_form_token(
        browser_id(request), f"interaction:{interaction.interaction_id}", presented
    )


def session_cookie_name(settings: Settings) -> str:
    return "__Host-authserver_session" if settings.cookie_secure else "authserver_session"


def set_session_cookie(response: Response, settings: Settings, value: str) -> None:
    response.set_cookie(
        session_cookie_name(settings),
        value,
        max_age=settings.login.session_ttl,
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(session_cookie_name(settings), path="/", secure=settings.cookie_secure, httponly=True, samesite="lax")


def session_cookie(request: Request) -> str | None:
    return request.cookies.get(session_cookie_name(request.app.state.services.settings))


# A random id for the browser, recorded in each interaction it starts. The login and consent forms only
# work from that browser, so an attacker cannot hand a victim their own interaction and CSRF token to
# sign the victim into the attacker's account (login CSRF; OIDC Core §3.1.2.3).


def browser_cookie_name(settings: Settings) -> str:
    return "__Host-authserver_browser" if settings.cookie_secure else "authserver_browser"


def browser_id(request: Request) -> str | None:
    value = request.cookies.get(browser_cookie_name(request.app.state.services.settings))
    return value if value and 16 <= len(value) <= 64 else None


def redirect_binding_browser(request: Request, url: str, browser: str) -> Response:
    """A 303 to one of our pages that (re)sets the browser id cookie."""
    return bind_browser(request, RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"}), browser)


def bind_browser(request: Request, response: Response, browser: str) -> Response:
    """(Re)set the browser id cookie on a response."""
    settings: Settings = request.app.state.services.settings
    response.set_cookie(
        browser_cookie_name(settings), browser, max_age=settings.login.session_ttl, path="/",
        secure=settings.cookie_secure, httponly=True, samesite="lax",
    )
    return response


def new_browser_id() -> str:
    return secrets.token_urlsafe(24)


def same_browser(request: Request, expected: str) -> bool:
    return bool(expected) and hmac.compare_digest(browser_id(request) or "", expected)


async def sign_in_first(request: Request, return_to: str) -> Response:
    """No session: start an interaction bound to this browser and send the person to sign in, then on to
    ``return_to`` (the account pages)."""
    services = request.app.state.services
    browser = browser_id(request) or new_browser_id()
    interaction = await request.app.state.interactions.start(services.clock.now(), return_to=return_to, browser=browser)
    return redirect_binding_browser(request, f"/login?i={interaction.interaction_id}", browser)
