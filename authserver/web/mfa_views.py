"""Second-factor pages: the sign-in step (/mfa), enrolment during a flow (/mfa/enrol), and the account's
own MFA pages (/account/mfa…). RFC 6238 TOTP, RFC 8176 amr values; no session exists for an enrolled
person until the second step succeeds, so a password alone never satisfies anything.

Every form carries ``pages.form_token``: in a flow keyed by the browser id and the interaction
(``interaction_form_token``), on account pages by the session cookie. Every answer is no-store.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from authserver.accounts.lifecycle import sign_out_other_sessions
from authserver.accounts.notices import notify
from authserver.endpoints._guard import client_ip, too_many_page
from authserver.endpoints._http import read_form
from authserver.errors import OAuthError, TooManyRequests
from authserver.interaction.policy import Interaction, InteractionStore
from authserver.mfa import qr, totp
from authserver.mfa.service import (
    ACR_MFA,
    AMR_AFTER_TOTP,
    LOW_BACKUP_CODES,
    AlreadyEnabled,
    Context,
    Method,
    MfaError,
    NoPendingEnrolment,
    NotEnabled,
    Outcome,
    SecretUnavailable,
    is_enrolled,
)
from authserver.services import Services
from authserver.storage.sql.models import Account, BrowserSession
from authserver.tokens.opaque import digest
from authserver.web.i18n import translate
from authserver.web.pages import (
    check_interaction_form,
    checked_form,
    error_page,
    form_token,
    html_page,
    interaction_form_token,
    render,
    request_locale,
    session_cookie,
    set_session_cookie,
    sign_in_first,
)

log = logging.getLogger("authserver.web.mfa")


# --- helpers ----------------------------------------------------------------------------------------------


def _context(request: Request, interaction: Interaction | None = None) -> Context:
    return Context(
        ip=request.client.host if request.client else None,
        user_agent=request.headers.get("user-agent"),
        client_id=interaction.request.client_id if interaction and interaction.request else None,
    )


def _locale(request: Request, interaction: Interaction | None = None) -> str:
    return request_locale(request, interaction.request.ui_locales if interaction and interaction.request else None)


def _code_from(form: dict[str, str]) -> tuple[str, Method] | None:
    """The code a form carries: a TOTP code in ``code`` or a backup code in ``backup_code``."""
    backup = form.get("backup_code", "").strip()[:64]
    if backup:
        return backup, "backup_code"
    code = form.get("code", "").strip()[:32]
    if code:
        return code, "totp"
    return None


def _failure_message(locale: str, outcome: Outcome, now: datetime) -> str:
    if outcome.reason == "locked" and outcome.locked_until is not None:
        minutes = max(1, math.ceil((outcome.locked_until - now).total_seconds() / 60))
        return translate(locale, "mfa.locked", minutes=minutes)
    if outcome.reason == "replay":
        return translate(locale, "mfa.replayed")
    if outcome.reason == "bad_password":
        return translate(locale, "mfa.bad_password")
    if outcome.method == "backup_code":
        return translate(locale, "mfa.backup_invalid")
    return translate(locale, "mfa.invalid")


def _failure_status(outcome: Outcome) -> int:
    return 429 if outcome.reason == "locked" else 401


def _with_retry_after(response: Response, outcome: Outcome, now: datetime) -> Response:
    if outcome.reason == "locked" and outcome.locked_until is not None:
        response.headers["Retry-After"] = str(max(1, int((outcome.locked_until - now).total_seconds())))
    return response


def _continue_target(interaction: Interaction) -> str:
    if interaction.request is not None:
        return f"/authorize/resume?i={interaction.interaction_id}"
    return interaction.return_to or "/account"


async def _upgraded_session(request: Request, services: Services, account_id: str) -> str:
    """A new session (new id: no fixation) that records the second factor (RFC 8176 otp + mfa)."""
    cookie, _ = await services.browser_sessions.create(
        account_id,
        auth_time=services.clock.now(),
        amr=list(AMR_AFTER_TOTP),
        acr=ACR_MFA,
        user_agent=request.headers.get("user-agent"),
        ip=request.client.host if request.client else None,
        replaces=session_cookie(request),
    )
    return cookie


async def _after_factor_change(request: Request, services: Services, account: Account, reason: str, *, locale: str) -> str:
    """A new enrolment: the upgraded session, every other session and token family ends (ASVS 5 7.4.3),
    and the person gets a security notice by mail."""
    cookie = await _upgraded_session(request, services, account.account_id)
    await sign_out_other_sessions(services, account.account_id, keep=digest(cookie), reason=reason, ip=client_ip(request))
    notify(services, account, "mfa_enabled", locale=locale)
    return cookie


def _download_href(codes: list[str]) -> str:
    return "data:text/plain;charset=utf-8," + quote("CMIPRO\n" + "\n".join(codes) + "\n")


def _render_backup_codes(request: Request, *, locale: str, codes: list[str], continue_to: str) -> Response:
    return render(
        request, "mfa_backup_codes.html", locale=locale, codes=codes, continue_to=continue_to,
        download_href=_download_href(codes),
    )


def _render_enrolment(
    request: Request, services: Services, account: Account, *, locale: str, secret: str, uri: str, action: str,
    hidden: dict[str, str], error: str | None = None, status_code: int = 200,
) -> Response:
    return render(
        request, "mfa_enrol.html", locale=locale, status_code=status_code, qr_svg=qr.svg(uri),
        secret=totp.format_secret(secret), action=action, hidden=hidden, error=error,
        issuer=services.settings.mfa.issuer, username=account.username,
    )


# --- the second step of sign-in -------------------------------------------------------------------------------


async def _flow_account(services: Services, request: Request, interaction: Interaction) -> tuple[Account | None, BrowserSession | None]:
    """Whose second factor this flow checks: the password-verified account, else the session's."""
    if interaction.pending_account_id:
        return await services.accounts.get(interaction.pending_account_id), None
    session = await services.browser_sessions.get(session_cookie(request))
    if session is None:
        return None, None
    return await services.accounts.get(session.account_id), session


async def _interaction_form(request: Request) -> dict[str, str] | Response:
    """GET carries only the interaction id; POST a strict form. Anything else is an error page."""
    if request.method not in ("GET", "POST"):
        return error_page(request, "error.method", status_code=405)
    if request.method == "GET":
        return {"i": request.query_params.get("i", "")}
    try:
        return await read_form(request)
    except OAuthError:
        return error_page(request, "error.invalid_request")


@html_page
async def mfa_prompt(request: Request) -> Response:
    services: Services = request.app.state.services
    interactions: InteractionStore = request.app.state.interactions
    try:
        parsed = await _interaction_form(request)
        if isinstance(parsed, Response):
            return parsed
        form = parsed
        if request.method == "POST":
            ip = client_ip(request)
            try:
                await services.limiter.check("mfa", ip, ip=ip)
            except TooManyRequests as error:
                return too_many_page(request, error)
        interaction = await interactions.get(form.get("i"))
        if interaction is None:
            return error_page(request, "error.interaction_expired")
        locale = _locale(request, interaction)
        account, _ = await _flow_account(services, request, interaction)
        if account is None or account.disabled_at is not None:
            return RedirectResponse(f"/login?i={interaction.interaction_id}", status_code=303)
        if not is_enrolled(account):
            return RedirectResponse(f"/mfa/enrol?i={interaction.interaction_id}", status_code=303)

        def page(error: str | None = None, status_code: int = 200) -> Response:
            return render(
                request, "mfa.html", locale=locale, status_code=status_code, interaction_id=interaction.interaction_id,
                csrf=interaction_form_token(request, interaction), username=account.username, error=error,
            )

        now = services.clock.now()
        if request.method == "GET":
            until = await services.mfa.locked_until(account.account_id)
            if until is not None:
                locked = Outcome(False, None, "locked", until)
                return _with_retry_after(page(_failure_message(locale, locked, now), 429), locked, now)
            return page()
        if not check_interaction_form(request, interaction, form.get("csrf")):
            return error_page(request, "error.csrf", status_code=403, locale=locale)
        presented = _code_from(form)
        if presented is None:
            return page(translate(locale, "mfa.invalid"), 400)
        outcome = await services.mfa.verify(
            account.account_id, code=presented[0], method=presented[1], context=_context(request, interaction)
        )
        if not outcome.ok:
            now = services.clock.now()
            return _with_retry_after(page(_failure_message(locale, outcome, now), _failure_status(outcome)), outcome, now)
        cookie = await _upgraded_session(request, services, account.account_id)
        interaction.pending_account_id = None
        interaction.signed_in = True
        await interactions.save(interaction)
        target = _continue_target(interaction)
        if outcome.method == "backup_code":
            remaining = outcome.backup_codes_remaining or 0
            # Lost phone? Offer to set up a new authenticator now, without a second backup code: a
            # single-use value bound to this account, valid self_service.mfa_recovery_ttl (account_mfa_recover).
            recovery = await services.account_tokens.issue(
                account.account_id, "recover", ttl=services.settings.self_service.mfa_recovery_ttl
            )
            response = render(
                request, "mfa_backup_used.html", locale=locale, remaining=remaining,
                low=remaining <= LOW_BACKUP_CODES, continue_to=target,
                recovery={"token": recovery}, csrf=form_token(cookie, "mfa"),
            )
        else:
            response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
        set_session_cookie(response, services.settings, cookie)
        return response
    except SecretUnavailable:
        return error_page(request, "error.unavailable", status_code=503)
    except NotEnabled:
        return error_page(request, "error.interaction_expired")


@html_page
async def mfa_enrol(request: Request) -> Response:
    """Enrolment inside a flow: someone who must use MFA and has not enrolled yet (signed in with a password)."""
    services: Services = request.app.state.services
    interactions: InteractionStore = request.app.state.interactions
    try:
        parsed = await _interaction_form(request)
        if isinstance(parsed, Response):
            return parsed
        form = parsed
        interaction = await interactions.get(form.get("i"))
        if interaction is None:
            return error_page(request, "error.interaction_expired")
        locale = _locale(request, interaction)
        session = await services.browser_sessions.get(session_cookie(request))
        account = await services.accounts.get(session.account_id) if session else None
        if account is None or account.disabled_at is not None:
            return RedirectResponse(f"/login?i={interaction.interaction_id}", status_code=303)
        if is_enrolled(account):
            return RedirectResponse(f"/mfa?i={interaction.interaction_id}", status_code=303)
        context = _context(request, interaction)
        hidden = {"i": interaction.interaction_id, "csrf": interaction_form_token(request, interaction)}
        if request.method == "POST" and (
            not check_interaction_form(request, interaction, form.get("csrf"))
        ):
            return error_page(request, "error.csrf", status_code=403, locale=locale)
        enrolment = await services.mfa.start_enrolment(account, context)
        if request.method == "GET":
            return _render_enrolment(
                request, services, account, locale=locale, secret=enrolment.secret, uri=enrolment.otpauth_uri,
                action="/mfa/enrol", hidden=hidden,
            )
        codes = await services.mfa.confirm_enrolment(account.account_id, form.get("code", "")[:32], context)
        if codes is None:
            return _render_enrolment(
                request, services, account, locale=locale, secret=enrolment.secret, uri=enrolment.otpauth_uri,
                action="/mfa/enrol", hidden=hidden, error=translate(locale, "mfa.invalid"), status_code=400,
            )
        cookie = await _after_factor_change(request, services, account, "mfa_enrolled", locale=locale)
        response = _render_backup_codes(request, locale=locale, codes=codes, continue_to=_continue_target(interaction))
        set_session_cookie(response, services.settings, cookie)
        return response
    except (AlreadyEnabled, NoPendingEnrolment):
        return error_page(request, "error.interaction_expired")
    except SecretUnavailable:
        return error_page(request, "error.unavailable", status_code=503)


# --- the account's MFA pages ----------------------------------------------------------------------------------


async def _account_session(request: Request, services: Services) -> tuple[BrowserSession, Account] | Response:
    session = await services.browser_sessions.get(session_cookie(request))
    if session is None:
        return await sign_in_first(request, "/account/mfa")
    account = await services.accounts.get(session.account_id)
    if account is None or account.disabled_at is not None:
        return error_page(request, "error.interaction_expired", status_code=403)
    return session, account


async def _account_page(
    request: Request, services: Services, account: Account, *, locale: str, message: str | None = None,
    error: str | None = None, status_code: int = 200,
) -> Response:
    status = await services.mfa.status(account)
    cookie = session_cookie(request) or ""
    return render(
        request, "account_mfa.html", locale=locale, status_code=status_code, status=status, csrf=form_token(cookie, "mfa"),
        message=message, error=error, low_threshold=LOW_BACKUP_CODES,
    )


@html_page
async def account_mfa(request: Request) -> Response:
    services: Services = request.app.state.services
    found = await _account_session(request, services)
    if isinstance(found, Response):
        return found
    _, account = found
    return await _account_page(request, services, account, locale=request_locale(request))


@html_page
async def account_mfa_enrol(request: Request) -> Response:
    services: Services = request.app.state.services
    try:
        if request.method not in ("GET", "POST"):
            return error_page(request, "error.method", status_code=405)
        found = await _account_session(request, services)
        if isinstance(found, Response):
            return found
        _, account = found
        locale = request_locale(request)
        if is_enrolled(account):
            return RedirectResponse("/account/mfa", status_code=303)
        hidden = {"csrf": form_token(session_cookie(request), "mfa")}
        context = _context(request)
        form: dict[str, str] = {}
        if request.method == "POST":
            posted = await checked_form(request, session_cookie(request), "mfa")
            if isinstance(posted, Response):
                return posted
            form = posted
        enrolment = await services.mfa.start_enrolment(account, context)
        if request.method == "GET":
            return _render_enrolment(
                request, services, account, locale=locale, secret=enrolment.secret, uri=enrolment.otpauth_uri,
                action="/account/mfa/enrol", hidden=hidden,
            )
        codes = await services.mfa.confirm_enrolment(account.account_id, form.get("code", "")[:32], context)
        if codes is None:
            return _render_enrolment(
                request, services, account, locale=locale, secret=enrolment.secret, uri=enrolment.otpauth_uri,
                action="/account/mfa/enrol", hidden=hidden, error=translate(locale, "mfa.invalid"), status_code=400,
            )
        cookie = await _after_factor_change(request, services, account, "mfa_enrolled", locale=locale)
        response = _render_backup_codes(request, locale=locale, codes=codes, continue_to="/account/mfa")
        set_session_cookie(response, services.settings, cookie)
        return response
    except (AlreadyEnabled, NoPendingEnrolment):
        return RedirectResponse("/account/mfa", status_code=303)
    except SecretUnavailable:
        return error_page(request, "error.unavailable", status_code=503)


@html_page
async def account_mfa_backup_codes(request: Request) -> Response:
    """Regenerate backup codes (after a current code); the old ones stop working."""
    return await _account_action(request, "regenerate")


@html_page
async def account_mfa_disable(request: Request) -> Response:
    """Turn MFA off (after the password and a current code or a backup code)."""
    return await _account_action(request, "disable")


async def _account_action(request: Request, action: str) -> Response:
    services: Services = request.app.state.services
    try:
        if request.method != "POST":
            return error_page(request, "error.method", status_code=405)
        found = await _account_session(request, services)
        if isinstance(found, Response):
            return found
        session, account = found
        locale = request_locale(request)
        form = await checked_form(request, session_cookie(request), "mfa")
        if isinstance(form, Response):
            return form
        presented = _code_from(form)
        if presented is None:
            return await _account_page(request, services, account, locale=locale, error=translate(locale, "mfa.invalid"), status_code=400)
        if action == "regenerate":
            outcome, codes = await services.mfa.regenerate_backup_codes(
                account.account_id, code=presented[0], method=presented[1], context=_context(request)
            )
            if outcome.ok:
                notify(services, account, "backup_codes_regenerated", locale=locale)
                return _render_backup_codes(request, locale=locale, codes=codes, continue_to="/account/mfa")
        else:
            outcome = await services.mfa.disable(
                account.account_id, password=form.get("password", ""), code=presented[0], method=presented[1],
                context=_context(request),
            )
            if outcome.ok:
                await sign_out_other_sessions(
                    services, account.account_id, keep=session.session_digest, reason="mfa_disabled", ip=client_ip(request)
                )
                notify(services, account, "mfa_disabled", locale=locale)
                fresh = await services.accounts.get(account.account_id)
                message = f'{translate(locale, "mfa.disabled")} {translate(locale, "mfa.sessions_ended")}'
                return await _account_page(request, services, fresh or account, locale=locale, message=message)
        now = services.clock.now()
        response = await _account_page(
            request, services, account, locale=locale, error=_failure_message(locale, outcome, now),
            status_code=_failure_status(outcome),
        )
        return _with_retry_after(response, outcome, now)
    except NotEnabled:
        return RedirectResponse("/account/mfa", status_code=303)
    except (SecretUnavailable, MfaError):
        return error_page(request, "error.unavailable", status_code=503)


@html_page
async def account_mfa_recover(request: Request) -> Response:
    """MFA recovery: someone who signed in with a backup code (lost phone) sets up a new authenticator.

    The backup-code page carries a single-use value (``account_tokens`` purpose ``recover``, digest only,
    valid ``self_service.mfa_recovery_ttl``) bound to the account. Using it removes the lost phone's
    secret and the remaining backup codes at once, ends every other session and token family, mails a
    security notice and leads to enrolment (which ends the other sessions again and issues new codes).
    Without it (expired, used, another account's, another browser's form) nothing changes.
    """
    services: Services = request.app.state.services
    try:
        if request.method != "POST":
            return error_page(request, "error.method", status_code=405)
        found = await _account_session(request, services)
        if isinstance(found, Response):
            return found
        session, account = found
        locale = request_locale(request)
        form = await checked_form(request, session_cookie(request), "mfa")
        if isinstance(form, Response):
            return form
        value = form.get("recovery", "")
        owner = await services.account_tokens.peek(value, "recover")
        if owner is None or owner.account_id != account.account_id or not is_enrolled(account):
            return error_page(request, "mfa.recover_invalid", locale=locale)
        if await services.account_tokens.claim(value, "recover") is None:  # a parallel use won
            return error_page(request, "mfa.recover_invalid", locale=locale)
        await services.mfa.recover(account.account_id, _context(request))
        await sign_out_other_sessions(
            services, account.account_id, keep=session.session_digest, reason="mfa_recovery", ip=client_ip(request)
        )
        notify(services, account, "mfa_replaced", locale=locale)
        return RedirectResponse("/account/mfa/enrol", status_code=303, headers={"Cache-Control": "no-store"})
    except SecretUnavailable:
        return error_page(request, "error.unavailable", status_code=503)
