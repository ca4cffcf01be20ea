"""Signing out: OpenID Connect RP-Initiated Logout 1.0 (``/logout``) and the person's own session list
(``/account/sessions``: end one session, or sign out everywhere).

RP-Initiated Logout (§2, §3):
- ``id_token_hint`` is the proof: an ID token we signed (expired ones too, §2), whose ``sub`` is the person
  signed in here (or nobody is). With proof, the session ends at once and the person goes back to
  ``post_logout_redirect_uri`` (with ``state``) — only if that URI is registered for the token's client,
  compared as exact strings.
- Without proof (no hint, or a hint for someone else), the person confirms on our page first, and is
  never redirected afterwards (no open redirect, no forced-logout by a third party, RFC 9700 §4.11).
- A hint that is not ours, a ``client_id`` that contradicts it, or an unregistered redirect URI: an error
  page, no redirect.

Forms carry ``pages.form_token`` keyed by the session cookie, like every other form.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from authserver.accounts.lifecycle import end_session, sign_out_everywhere
from authserver.endpoints._http import query, read_form
from authserver.errors import OAuthError
from authserver.protocol.redirect_uri import with_params
from authserver.services import Services
from authserver.storage.sql.models import BrowserSession
from authserver.tokens.jwt import audience as token_audience
from authserver.web.pages import (
    check_form_token,
    checked_form,
    clear_session_cookie,
    error_page,
    form_token,
    html_page,
    render,
    request_locale,
    session_cookie,
    sign_in_first,
)

log = logging.getLogger("authserver.web")

SESSION_HANDLE_LENGTH = 16




def _signed_out(request: Request, services: Services) -> Response:
    response = render(request, "signed_out.html", locale=request_locale(request, request.query_params.get("ui_locales")))
    clear_session_cookie(response, services.settings)
    return response


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


@html_page
async def logout(request: Request) -> Response:
    services: Services = request.app.state.services
    if request.method not in ("GET", "POST"):
        return error_page(request, "error.method", status_code=405)
    try:
        params = query(request) if request.method == "GET" else await read_form(request)
    except OAuthError:
        return error_page(request, "error.invalid_request")
    cookie = session_cookie(request)
    session = await services.browser_sessions.get(cookie)
    if request.method == "POST" and params.get("confirm") == "yes":
        if not check_form_token(cookie, "logout", params.get("csrf")):
            return error_page(request, "error.csrf", status_code=403)
        if session is not None:
            await end_session(services, session.account_id, session.session_digest, ip=_ip(request))
        return _signed_out(request, services)
    return await _rp_initiated(request, services, params, cookie, session)


async def _rp_initiated(
    request: Request, services: Services, params: dict[str, str], cookie: str | None, session: BrowserSession | None
) -> Response:
    locale = request_locale(request, params.get("ui_locales"))
    hint = params.get("id_token_hint")
    claims = services.signer.verify_id_token_hint(hint) if hint else None
    if hint and claims is None:
        return error_page(request, "logout.invalid_hint", locale=locale)
    client_id = params.get("client_id")
    if claims is not None:
        audience = token_audience(claims) or []
        if client_id is not None and client_id not in audience:
            return error_page(request, "logout.invalid_hint", locale=locale)
        client_id = client_id or str(claims.get("azp") or audience[0])
    target = params.get("post_logout_redirect_uri")
    if target is not None:
        client = await services.clients.get(client_id) if client_id else None
        if client is None or target not in client.post_logout_redirect_uris:
            return error_page(request, "logout.invalid_redirect", locale=locale)
    proven = claims is not None and (session is None or session.account_id == claims["sub"])
    if not proven:
        if session is None:
            return _signed_out(request, services)
        return render(request, "logout_confirm.html", locale=locale, csrf=form_token(cookie, "logout"))
    if session is not None:
        await end_session(services, session.account_id, session.session_digest, ip=_ip(request))
    if target is None:
        return _signed_out(request, services)
    state = params.get("state")
    response = RedirectResponse(
        with_params(target, {"state": state}) if state is not None else target,
        status_code=303,
        headers={"Cache-Control": "no-store"},
    )
    clear_session_cookie(response, services.settings)
    return response


@html_page
async def account_sessions(request: Request) -> Response:
    """The person's live sessions; end one, or sign out everywhere (which also revokes every refresh token)."""
    services: Services = request.app.state.services
    if request.method not in ("GET", "POST"):
        return error_page(request, "error.method", status_code=405)
    cookie = session_cookie(request)
    current = await services.browser_sessions.get(cookie)
    if current is None:
        if request.method == "POST":
            return error_page(request, "error.interaction_expired", status_code=403)
        return await sign_in_first(request, "/account/sessions")
    account_id = current.account_id
    if request.method == "POST":
        form = await checked_form(request, cookie, "sessions")
        if isinstance(form, Response):
            return form
        action = form.get("action")
        if action == "end_all":
            await sign_out_everywhere(services, account_id, ip=_ip(request))
            return _signed_out(request, services)
        if action == "end":
            handle = form.get("session", "")
            live = await services.browser_sessions.list_for_account(account_id)
            chosen = next((s for s in live if len(handle) == SESSION_HANDLE_LENGTH and s.session_digest.startswith(handle)), None)
            if chosen is None:
                return error_page(request, "error.invalid_request")
            await end_session(services, account_id, chosen.session_digest, ip=_ip(request))
            if chosen.session_digest == current.session_digest:
                return _signed_out(request, services)
            return RedirectResponse("/account/sessions", status_code=303, headers={"Cache-Control": "no-store"})
        return error_page(request, "error.invalid_request")
    live = sorted(await services.browser_sessions.list_for_account(account_id), key=lambda s: s.created_at, reverse=True)
    rows = [
        {
            "handle": s.session_digest[:SESSION_HANDLE_LENGTH],
            "current": s.session_digest == current.session_digest,
            "created": s.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            "last_seen": s.last_seen_at.strftime("%Y-%m-%d %H:%M UTC"),
            "user_agent": s.user_agent or "",
            "ip": s.ip or "",
        }
        for s in live
    ]
    return render(
        request, "sessions.html", locale=request_locale(request), sessions=rows, csrf=form_token(cookie, "sessions")
    )
