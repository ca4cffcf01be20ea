"""Rendering pages: Jinja2 templates with autoescape, the message catalogue, and the session cookie."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from authserver.settings import Settings
from authserver.web.i18n import choose_locale, translate

_TEMPLATES = Path(__file__).parent / "templates"
PAGE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}


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
