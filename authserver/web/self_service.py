"""Self-service pages (issue 14): change the password, reset it by a mailed link, and see and withdraw
the apps that hold the person's consent. docs/self-service.md describes what a person can do.

Same rules as the other pages: every answer is no-store; every form carries a CSRF value derived from an
HttpOnly cookie (``pages.form_token``): the session cookie on account pages, the browser id on the
pages before sign-in (forgot / reset). Bad input gets a 4xx page and changes nothing: every check runs
before the first write.

Credentials change through the lifecycle functions only (``accounts/lifecycle.py``): a password change
ends the person's other sessions and revokes every token family; a reset ends every session and family;
a withdrawn consent revokes that client's families for the person.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from authserver.accounts.lifecycle import (
    sign_out_everywhere,
    sign_out_other_sessions,
    withdraw_consent,
)
from authserver.accounts.lockout import account_key, ip_key
from authserver.accounts.notices import notify
from authserver.accounts.passwords import MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, is_common
from authserver.endpoints._guard import client_ip, too_many_page, user_agent
from authserver.errors import TooManyRequests
from authserver.services import Services
from authserver.storage.sql.account_tokens import ClaimedToken
from authserver.storage.sql.models import Account, BrowserSession
from authserver.web.i18n import translate
from authserver.web.pages import (
    bind_browser,
    browser_id,
    checked_form,
    clear_session_cookie,
    error_page,
    form_token,
    html_page,
    new_browser_id,
    render,
    request_locale,
    session_cookie,
    sign_in_first,
)

log = logging.getLogger("authserver.web.self_service")

MAX_EMAIL_CHARS = 320
# One "@", something on each side, no spaces or control characters (the SMTP server has the last word).
EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]{1,64}@[^@\s\x00-\x1f\x7f]{1,255}")
# Accounts sharing one address that get a reset mail each (the mail names the username).
MAX_ACCOUNTS_PER_ADDRESS = 5

Page = Callable[[Request, Services], Awaitable[Response]]


async def _guarded(request: Request, where: str, page: Page, *, methods: tuple[str, ...] = ("GET", "POST")) -> Response:
    """The method check every page here shares (errors: the `html_page` boundary)."""
    services: Services = request.app.state.services
    if request.method not in methods:
        return error_page(request, "error.method", status_code=405)
    return await page(request, services)


async def signed_in(request: Request, services: Services, return_to: str) -> tuple[BrowserSession, Account] | Response:
    """The session and account of an account page; without a session, sign in first and come back."""
    session = await services.browser_sessions.get(session_cookie(request))
    if session is None:
        if request.method != "GET":
            return error_page(request, "error.interaction_expired", status_code=403)
        return await sign_in_first(request, return_to)
    account = await services.accounts.get(session.account_id)
    if account is None or account.disabled_at is not None:
        return error_page(request, "error.interaction_expired", status_code=403)
    return session, account


def password_problem(password: str, confirmation: str) -> str | None:
    """The catalogue key saying what is wrong with a new password (NIST SP 800-63B §5.1.1.2), or None."""
    if password != confirmation:
        return "password.mismatch"
    if len(password) < MIN_PASSWORD_CHARS:
        return "password.too_short"
    if len(password) > MAX_PASSWORD_CHARS:
        return "password.too_long"
    if is_common(password):
        return "password.too_common"
    return None


# --- password change ----------------------------------------------------------------------------------


@html_page
async def account_password(request: Request) -> Response:
    return await _guarded(request, "/account/password", _account_password)


async def _account_password(request: Request, services: Services) -> Response:
    found = await signed_in(request, services, "/account/password")
    if isinstance(found, Response):
        return found
    session, account = found
    cookie = session_cookie(request)
    locale = request_locale(request)

    def page(*, error: str | None = None, message: str | None = None, status_code: int = 200) -> Response:
        return render(
            request, "password_change.html", locale=locale, status_code=status_code, csrf=form_token(cookie, "password"),
            username=account.username, error=translate(locale, error) if error else None,
            message=translate(locale, message) if message else None,
        )

    if request.method == "GET":
        return page()
    form = await checked_form(request, cookie, "password")
    if isinstance(form, Response):
        return form
    ip = client_ip(request)
    try:
        await services.limiter.check("login", ip, ip=ip, account_id=account.account_id, user_agent=user_agent(request))
    except TooManyRequests as error:
        return too_many_page(request, error, locale=locale)
    # The current password is guessed against the same locks as the sign-in page (a stolen session must
    # not become an unlimited password oracle); a locked key is answered before the hash.
    keys = [account_key(account.username), ip_key(ip)]
    locked = await services.lockout.locked_for(keys)
    if locked:
        response = page(error="login.locked", status_code=429)
        response.headers["Retry-After"] = str(locked)
        return response
    current, new, confirmation = form.get("current_password", ""), form.get("new_password", ""), form.get("confirm_password", "")
    if not await services.passwords.verify(account.password_hash, current):
        await services.events.record(
            "password_change", "failure", account_id=account.account_id, ip=ip, user_agent=user_agent(request), reason="bad_password"
        )
        by_account = await services.lockout.failure(keys[0], services.limiter.account_policy())
        by_ip = await services.lockout.failure(keys[1], await services.limiter.ip_policy())
        if by_account.locked_for or by_ip.locked_for:
            await services.events.record("lockout", "locked", account_id=account.account_id, ip=ip, scope="password_change")
        return page(error="password.wrong_current", status_code=401)
    problem = password_problem(new, confirmation) or ("password.same" if new == current else None)
    if problem:
        return page(error=problem, status_code=400)
    await services.accounts.set_password_hash(account.account_id, await services.passwords.hash(new))
    await services.lockout.clear(keys[0])
    revoked = await sign_out_other_sessions(
        services, account.account_id, keep=session.session_digest, reason="password_changed", ip=ip
    )
    await services.events.record(
        "password_change", "success", account_id=account.account_id, ip=ip, user_agent=user_agent(request), grants_revoked=revoked
    )
    notify(services, account, "password_changed", locale=locale)
    return page(message="password.changed")


# --- password reset by mail -----------------------------------------------------------------------------


def _browser_form_page(request: Request, template: str, *, locale: str, purpose: str, status_code: int = 200, **context: object) -> Response:
    """A form before sign-in: its CSRF value comes from the browser id cookie, set here if missing."""
    browser = browser_id(request) or new_browser_id()
    response = render(request, template, locale=locale, status_code=status_code, csrf=form_token(browser, purpose), **context)
    return bind_browser(request, response, browser) if browser != browser_id(request) else response


def normalise_email(raw: str) -> str | None:
    email = raw.strip().lower()
    return email if len(email) <= MAX_EMAIL_CHARS and EMAIL.fullmatch(email) else None


@html_page
async def password_forgot(request: Request) -> Response:
    return await _guarded(request, "/password/forgot", _password_forgot)


async def _password_forgot(request: Request, services: Services) -> Response:
    locale = request_locale(request)
    minutes = max(1, services.settings.self_service.reset_token_ttl // 60)

    def page(*, sent: bool = False, error: str | None = None, status_code: int = 200) -> Response:
        return _browser_form_page(
            request, "password_forgot.html", locale=locale, purpose="forgot", status_code=status_code, sent=sent,
            minutes=minutes, error=translate(locale, error) if error else None,
        )

    if request.method == "GET" or not services.mailer.enabled:
        return page()
    form = await checked_form(request, browser_id(request), "forgot")
    if isinstance(form, Response):
        return form
    ip = client_ip(request)
    try:
        await services.limiter.check("password_reset", ip, ip=ip, user_agent=user_agent(request))
    except TooManyRequests as error:
        return too_many_page(request, error, locale=locale)
    email = normalise_email(form.get("email", ""))
    if email is None:
        return page(error="reset.invalid_email", status_code=400)
    # Keyed by the address whether or not an account has it, so the limit reveals nothing either.
    address_key = hashlib.sha256(email.encode()).hexdigest()
    try:
        await services.limiter.check("password_reset_address", address_key, ip=ip, user_agent=user_agent(request))
    except TooManyRequests as error:
        return too_many_page(request, error, locale=locale)
    accounts = await services.accounts.find_by_email(email, limit=MAX_ACCOUNTS_PER_ADDRESS)
    for account in accounts:
        token = await services.account_tokens.issue(
            account.account_id, "reset", ttl=services.settings.self_service.reset_token_ttl
        )
        mail_locale = account.locale if account.locale in ("es", "en") else locale
        link = f"{services.settings.server.issuer}/password/reset?token={token}"
        services.mailer.send_later(services.mailer.compose(
            account.email or email, "password_reset", locale=mail_locale, username=account.username, link=link, minutes=minutes,
        ))
        await services.events.record("password_reset", "requested", account_id=account.account_id, ip=ip, user_agent=user_agent(request))
    if not accounts:
        await services.events.record("password_reset", "unknown_address", ip=ip, user_agent=user_agent(request))
    # The same page whether or not an account has the address (mail leaves in the background).
    return page(sent=True)


@html_page
async def password_reset(request: Request) -> Response:
    return await _guarded(request, "/password/reset", _password_reset)


def _invalid_link(request: Request, locale: str) -> Response:
    return render(
        request, "notice.html", locale=locale, status_code=400, heading=translate(locale, "reset.title"),
        notice_id="invalid-link", message=translate(locale, "reset.invalid_link"), link="/password/forgot",
        link_text=translate(locale, "reset.ask_again"),
    )


MailedLink = tuple[dict[str, str], ClaimedToken | None, Account | None]


async def read_mailed_link(request: Request, services: Services, purpose: str, locale: str) -> MailedLink | Response:
    """The page behind a mailed single-use link (reset, address verification): GET carries the link's token
    in the query, POST brings it back with the form's CSRF value. Looking does not use the link (mail
    scanners open links before people do); only the page's button does, with ``account_tokens.claim``.
    Returns the form, the link's owner and its account (None when unknown), or the page to answer."""
    if not services.mailer.enabled:
        return error_page(request, "reset.unavailable", status_code=404, locale=locale)
    if request.method == "GET":
        form = {"token": request.query_params.get("token", "")}
    else:
        posted = await checked_form(request, browser_id(request), purpose)
        if isinstance(posted, Response):
            return posted
        form = posted
    owner = await services.account_tokens.peek(form.get("token", ""), purpose)
    account = await services.accounts.get(owner.account_id) if owner else None
    return form, owner, account


async def _password_reset(request: Request, services: Services) -> Response:
    locale = request_locale(request)
    link = await read_mailed_link(request, services, "reset", locale)
    if isinstance(link, Response):
        return link
    form, _, account = link
    token = form.get("token", "")
    if account is None or account.disabled_at is not None:
        return _invalid_link(request, locale)

    def page(error: str | None = None, status_code: int = 200) -> Response:
        return _browser_form_page(
            request, "password_reset.html", locale=locale, purpose="reset", status_code=status_code, token=token,
            username=account.username, error=translate(locale, error) if error else None,
        )

    if request.method == "GET":
        return page()
    problem = password_problem(form.get("new_password", ""), form.get("confirm_password", ""))
    if problem:
        return page(problem, 400)
    password_hash = await services.passwords.hash(form["new_password"])
    if await services.account_tokens.claim(token, "reset") is None:  # a parallel use won
        return _invalid_link(request, locale)
    ip = client_ip(request)
    await services.accounts.set_password_hash(account.account_id, password_hash)
    # The person proved they read the account's mail: the password step's lock is lifted.
    await services.lockout.clear(account_key(account.username))
    revoked = await sign_out_everywhere(services, account.account_id, reason="password_reset", ip=ip)
    await services.events.record(
        "password_reset", "success", account_id=account.account_id, ip=ip, user_agent=user_agent(request), grants_revoked=revoked
    )
    notify(services, account, "password_reset", locale=locale)
    response = render(
        request, "notice.html", locale=locale, heading=translate(locale, "reset.done_heading"), notice_id="reset-done",
        message=translate(locale, "reset.done"), link="/account", link_text=translate(locale, "reset.sign_in"),
    )
    clear_session_cookie(response, services.settings)
    return response


# --- apps holding consent -------------------------------------------------------------------------------


@html_page
async def account_apps(request: Request) -> Response:
    return await _guarded(request, "/account/apps", _account_apps)


async def _account_apps(request: Request, services: Services) -> Response:
    found = await signed_in(request, services, "/account/apps")
    if isinstance(found, Response):
        return found
    _, account = found
    cookie = session_cookie(request)
    locale = request_locale(request)
    message = None
    if request.method == "POST":
        form = await checked_form(request, cookie, "apps")
        if isinstance(form, Response):
            return form
        client_id = form.get("client_id", "")
        held = {c.client_id for c in await services.consents.list_for_account(account.account_id)}
        if client_id not in held:
            return error_page(request, "error.invalid_request", locale=locale)
        await withdraw_consent(services, account.account_id, client_id, ip=client_ip(request))
        client = await services.clients.get(client_id)
        message = translate(locale, "apps.withdrawn", client=client.name if client else client_id)
    apps = []
    for consent in await services.consents.list_for_account(account.account_id):
        client = await services.clients.get(consent.client_id)
        apps.append({
            "client_id": consent.client_id, "name": client.name if client else consent.client_id,
            "scopes": consent.scopes, "since": consent.created_at.strftime("%Y-%m-%d"),
        })
    return render(request, "account_apps.html", locale=locale, apps=apps, csrf=form_token(cookie, "apps"), message=message)



__all__ = ["account_apps", "account_password", "password_forgot", "password_reset", "signed_in"]
