"""Sign-in and consent pages. Every form carries ``pages.interaction_form_token``; every answer is no-store."""

from __future__ import annotations

import logging
import math

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from authserver.accounts.lockout import account_key, ip_key
from authserver.endpoints._guard import client_ip, too_many_page
from authserver.endpoints._http import query, read_form
from authserver.endpoints.authorize import RedirectError, continue_flow, error_redirect
from authserver.errors import AccessDenied, OAuthError, TooManyRequests
from authserver.interaction.policy import Interaction, InteractionStore
from authserver.mfa.service import ACR_PASSWORD, is_enrolled
from authserver.services import Services
from authserver.web.i18n import translate
from authserver.web.pages import (
    check_interaction_form,
    error_page,
    html_page,
    interaction_form_token,
    render,
    request_locale,
    session_cookie,
    set_session_cookie,
    sign_in_first,
)

log = logging.getLogger("authserver.web")


def _client_ip(request: Request) -> str | None:
    return client_ip(request)


async def _load(request: Request, interaction_id: str | None) -> Interaction | None:
    interactions: InteractionStore = request.app.state.interactions
    return await interactions.get(interaction_id)


def _locale(request: Request, interaction: Interaction | None) -> str:
    return request_locale(request, interaction.request.ui_locales if interaction and interaction.request else None)


async def _client_name(services: Services, interaction: Interaction) -> str | None:
    if interaction.request is None:
        return None
    client = await services.clients.get(interaction.request.client_id)
    return client.name if client else None


@html_page
async def login(request: Request) -> Response:
    services: Services = request.app.state.services
    ip = client_ip(request)
    try:
        await services.limiter.check("login", ip, ip=ip, user_agent=request.headers.get("user-agent"))
    except TooManyRequests as error:
        return too_many_page(request, error)
    if request.method == "GET":
        interaction = await _load(request, request.query_params.get("i"))
        if interaction is None:
            return error_page(request, "error.interaction_expired")
        hint = interaction.request.login_hint if interaction.request else None
        return render(
            request, "login.html", locale=_locale(request, interaction),
            interaction_id=interaction.interaction_id, csrf=interaction_form_token(request, interaction),
            client_name=await _client_name(services, interaction), username=hint, error=None,
        )
    if request.method != "POST":
        return error_page(request, "error.method", status_code=405)
    try:
        form = await read_form(request)
    except OAuthError:
        return error_page(request, "error.invalid_request")
    interaction = await _load(request, form.get("i"))
    if interaction is None:
        return error_page(request, "error.interaction_expired")
    if not check_interaction_form(request, interaction, form.get("csrf")):
        return error_page(request, "error.csrf", status_code=403)
    locale = _locale(request, interaction)
    username = form.get("username", "")[:150]
    password = form.get("password", "")
    client_id = interaction.request.client_id if interaction.request else None
    # Brute force: locked keys are answered before any lookup or hash, so a lock reveals nothing.
    lock_keys = [account_key(username), ip_key(ip)]
    locked = await services.lockout.locked_for(lock_keys)
    if locked:
        await services.events.record(
            "login", "failure", client_id=client_id, ip=ip, user_agent=request.headers.get("user-agent"), reason="locked",
        )
        await services.limiter.note_failure()
        response = render(
            request, "login.html", locale=locale, status_code=429,
            interaction_id=interaction.interaction_id, csrf=interaction_form_token(request, interaction),
            client_name=await _client_name(services, interaction), username=username,
            error=translate(locale, "login.locked"),
        )
        response.headers["Retry-After"] = str(locked)
        return response
    account = await services.accounts.get_by_username(username) if username else None
    ok = await services.passwords.verify(account.password_hash if account else None, password)
    if ok and account is not None and account.disabled_at is None and is_enrolled(account):
        # A locked second step is announced only after the right password: a wrong one is answered below
        # exactly like any other wrong password, so nobody learns that the account exists or uses MFA.
        locked_until = await services.mfa.locked_until(account.account_id)
        if locked_until is not None:
            await services.events.record(
                "login", "failure", account_id=account.account_id,
                client_id=interaction.request.client_id if interaction.request else None,
                ip=_client_ip(request), user_agent=request.headers.get("user-agent"),
                reason="mfa_locked", password_ok=ok,
            )
            minutes = max(1, math.ceil((locked_until - services.clock.now()).total_seconds() / 60))
            return render(
                request, "login.html", locale=locale, status_code=429,
                interaction_id=interaction.interaction_id, csrf=interaction_form_token(request, interaction),
                client_name=await _client_name(services, interaction), username=username,
                error=translate(locale, "mfa.locked", minutes=minutes),
            )
    if not ok or account is None or account.disabled_at is not None:
        await services.events.record(
            "login", "failure", account_id=account.account_id if account else None,
            client_id=client_id, ip=ip, user_agent=request.headers.get("user-agent"),
            reason="unknown_user" if account is None else ("disabled" if ok else "bad_password"),
        )
        await _count_failure(services, lock_keys, ip=ip, account_id=account.account_id if account else None)
        await services.limiter.note_failure()
        return render(
            request, "login.html", locale=locale, status_code=401,
            interaction_id=interaction.interaction_id, csrf=interaction_form_token(request, interaction),
            client_name=await _client_name(services, interaction), username=username,
            error=translate(locale, "login.failed"),
        )
    await services.lockout.clear(lock_keys[0])
    if account.password_hash and services.passwords.needs_rehash(account.password_hash):
        await services.accounts.set_password_hash(account.account_id, await services.passwords.hash(password))
    if is_enrolled(account):
        # Password verified; no session until the second factor (an `amr: ["pwd"]` session would be too weak).
        interaction.pending_account_id = account.account_id
        await request.app.state.interactions.save(interaction)
        await services.events.record(
            "login", "pending_mfa", account_id=account.account_id,
            client_id=interaction.request.client_id if interaction.request else None,
            ip=_client_ip(request), user_agent=request.headers.get("user-agent"), next="mfa",
        )
        return RedirectResponse(
            f"/mfa?i={interaction.interaction_id}", status_code=303, headers={"Cache-Control": "no-store"}
        )
    if interaction.pending_account_id is not None:
        interaction.pending_account_id = None
        await request.app.state.interactions.save(interaction)
    cookie, _ = await services.browser_sessions.create(
        account.account_id,
        auth_time=services.clock.now(),
        amr=["pwd"],
        acr=ACR_PASSWORD,
        user_agent=request.headers.get("user-agent"),
        ip=_client_ip(request),
        replaces=session_cookie(request),
    )
    await services.events.record(
        "login", "success", account_id=account.account_id,
        client_id=interaction.request.client_id if interaction.request else None,
        ip=_client_ip(request), user_agent=request.headers.get("user-agent"), amr=["pwd"],
    )
    interaction.signed_in = True
    await request.app.state.interactions.save(interaction)
    target = f"/authorize/resume?i={interaction.interaction_id}" if interaction.request else (interaction.return_to or "/")
    response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    set_session_cookie(response, services.settings, cookie)
    return response


async def _count_failure(services: Services, keys: list[str], *, ip: str, account_id: str | None) -> None:
    """One failed sign-in against the account's and the IP's counters; a lock is its own security event."""
    by_account = await services.lockout.failure(keys[0], services.limiter.account_policy())
    by_ip = await services.lockout.failure(keys[1], await services.limiter.ip_policy())
    for failure, scope in ((by_account, "account"), (by_ip, "ip")):
        if failure.locked_for:
            await services.events.record("lockout", "locked", account_id=account_id, ip=ip, scope=scope, seconds=failure.locked_for)


@html_page
async def consent(request: Request) -> Response:
    services: Services = request.app.state.services
    try:
        if request.method not in ("GET", "POST"):
            return error_page(request, "error.method", status_code=405)
        try:
            params = query(request) if request.method == "GET" else await read_form(request)
        except OAuthError:
            return error_page(request, "error.invalid_request")
        interaction = await _load(request, params.get("i"))
        if interaction is None or interaction.request is None:
            return error_page(request, "error.interaction_expired")
        session = await services.browser_sessions.get(session_cookie(request))
        if session is None:
            return RedirectResponse(f"/login?i={interaction.interaction_id}", status_code=303)
        auth_request = interaction.request
        client = await services.clients.get(auth_request.client_id)
        if client is None or client.disabled:
            return error_page(request, "error.invalid_client")
        if request.method == "GET":
            account = await services.accounts.get(session.account_id)
            return render(
                request, "consent.html", locale=_locale(request, interaction),
                interaction_id=interaction.interaction_id, csrf=interaction_form_token(request, interaction), client_name=client.name,
                username=account.username if account else "", scopes=auth_request.scopes,
            )
        if not check_interaction_form(request, interaction, params.get("csrf")):
            return error_page(request, "error.csrf", status_code=403)
        interactions: InteractionStore = request.app.state.interactions
        if params.get("decision") != "allow":
            await interactions.finish(interaction.interaction_id)
            return error_redirect(
                services, auth_request.redirect_uri, AccessDenied("The user denied the request."), auth_request.state
            )
        await services.consents.grant(session.account_id, client.client_id, set(auth_request.scopes))
        interaction.consent_given = True
        await interactions.save(interaction)
        return await continue_flow(request, services, client, auth_request, session, interaction=interaction)
    except RedirectError as error:
        return error_redirect(services, error.redirect_to, error.error, error.state)


@html_page
async def resume(request: Request) -> Response:
    """After a prompt: evaluate the authorization request again with the interaction's progress."""
    services: Services = request.app.state.services
    try:
        interaction = await _load(request, request.query_params.get("i"))
        if interaction is None or interaction.request is None:
            return error_page(request, "error.interaction_expired")
        client = await services.clients.get(interaction.request.client_id)
        if client is None or client.disabled:
            return error_page(request, "error.invalid_client")
        session = await services.browser_sessions.get(session_cookie(request))
        return await continue_flow(request, services, client, interaction.request, session, interaction=interaction)
    except RedirectError as error:
        return error_redirect(services, error.redirect_to, error.error, error.state)


@html_page
async def account(request: Request) -> Response:
    """The signed-in person's own page; without a session, sign in first and come back here."""
    services: Services = request.app.state.services
    session = await services.browser_sessions.get(session_cookie(request))
    if session is None:
        return await sign_in_first(request, "/account")
    person = await services.accounts.get(session.account_id)
    if person is None or person.disabled_at is not None:
        return error_page(request, "error.interaction_expired", status_code=403)
    return render(request, "account.html", locale=request_locale(request), account=person, session=session)
