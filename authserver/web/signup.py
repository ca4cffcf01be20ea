"""Self-service, second part (issue 14): sign-up, e-mail verification by a mailed link, and the profile
page. docs/self-service.md describes what a person can do.

Same rules as the other self-service pages (``web/self_service.py``): every answer no-store, every form
a CSRF value from ``pages.form_token`` (the browser id before sign-in, the session cookie on account
pages), strict forms, and every check before the first write, so bad input gets a 4xx page and changes
nothing.

Account existence: sign-up never looks at whether an e-mail address is in use (addresses are not unique;
a new address is unverified until its owner uses the link), so the answer says nothing about it. The
username must be unique and people must be able to pick one, so a taken username is said to be taken;
every sign-up POST counts against the per-IP ``signup`` limit, which keeps that from being a cheap oracle.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from authserver.accounts.lockout import account_key, ip_key
from authserver.accounts.notices import notify
from authserver.endpoints._guard import client_ip, too_many_page, user_agent
from authserver.errors import TooManyRequests
from authserver.services import Services
from authserver.storage.errors import Conflict
from authserver.storage.sql.models import Account
from authserver.web.i18n import SUPPORTED, translate
from authserver.web.pages import (
    browser_id,
    checked_form,
    error_page,
    form_token,
    html_page,
    render,
    request_locale,
    session_cookie,
)
from authserver.web.self_service import (
    _browser_form_page,
    _guarded,
    normalise_email,
    password_problem,
    read_mailed_link,
    signed_in,
)

log = logging.getLogger("authserver.web.signup")

USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{2,39}")
MAX_NAME_CHARS = 200
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clean_name(raw: str) -> str | None:
    """The display name (may be empty), or None when it is too long or holds control characters."""
    name = raw.strip()
    return name if len(name) <= MAX_NAME_CHARS and not CONTROL.search(name) else None


def _hours(services: Services) -> int:
    return max(1, services.settings.self_service.verify_token_ttl // 3600)


async def _mail_limit(request: Request, services: Services, email: str, locale: str) -> Response | None:
    """At most ``abuse.password_reset_per_address`` mails a minute to one address (keyed by its digest)."""
    ip = client_ip(request)
    try:
        await services.limiter.check(
            "password_reset_address", hashlib.sha256(email.encode()).hexdigest(), ip=ip, user_agent=user_agent(request)
        )
    except TooManyRequests as error:
        return too_many_page(request, error, locale=locale)
    return None


async def send_verification(services: Services, account: Account, email: str, *, locale: str) -> None:
    """A new single-use link for ``email`` (older ones of the account stop working) in the person's language."""
    token = await services.account_tokens.issue(
        account.account_id, "verify", ttl=services.settings.self_service.verify_token_ttl, email=email
    )
    link = f"{services.settings.server.issuer}/email/verify?token={token}"
    mail_locale = account.locale if account.locale in SUPPORTED else locale
    services.mailer.send_later(services.mailer.compose(
        email, "verify_email", locale=mail_locale, username=account.username, link=link, hours=_hours(services),
    ))


# --- sign-up ------------------------------------------------------------------------------------------


@html_page
async def signup(request: Request) -> Response:
    return await _guarded(request, "/signup", _signup)


async def _signup(request: Request, services: Services) -> Response:
    locale = request_locale(request)
    own = services.settings.self_service
    values = {"username": "", "email": "", "name": "", "invitation": ""}

    def page(error: str | None = None, status_code: int = 200) -> Response:
        return _browser_form_page(
            request, "signup.html", locale=locale, purpose="signup", status_code=status_code, open=own.signup,
            invitation_required=own.signup_requires_invitation, values=values,
            error=translate(locale, error) if error else None,
        )

    if not own.signup:
        return page(status_code=404)
    if request.method == "GET":
        return page()
    form = await checked_form(request, browser_id(request), "signup")
    if isinstance(form, Response):
        return form
    ip = client_ip(request)
    try:
        await services.limiter.check("signup", ip, ip=ip, user_agent=user_agent(request))
    except TooManyRequests as error:
        return too_many_page(request, error, locale=locale)
    username = form.get("username", "").strip().lower()
    email = normalise_email(form.get("email", ""))
    name = clean_name(form.get("name", ""))
    invitation = form.get("invitation", "").strip()
    # Only what the person typed goes back into the form, and only when it is printable.
    values.update({
        "username": username if USERNAME.fullmatch(username) else "", "email": email or "", "name": name or "",
        "invitation": invitation[:128] if own.signup_requires_invitation and not CONTROL.search(invitation) else "",
    })
    if own.signup_requires_invitation and not await services.invitations.usable(invitation):
        values["invitation"] = ""
        return page("signup.invalid_invitation", 400)
    if not USERNAME.fullmatch(username):
        return page("signup.invalid_username", 400)
    if email is None:
        return page("reset.invalid_email", 400)
    if name is None:
        return page("profile.invalid_name", 400)
    problem = password_problem(form.get("new_password", ""), form.get("confirm_password", ""))
    if problem:
        return page(problem, 400)
    if services.mailer.enabled:
        limited = await _mail_limit(request, services, email, locale)
        if limited is not None:
            return limited
    if await services.accounts.get_by_username(username) is not None:
        await services.events.record("signup", "failure", ip=ip, user_agent=user_agent(request), reason="username_taken")
        values["username"] = ""
        return page("signup.username_taken", 409)
    password_hash = await services.passwords.hash(form["new_password"])
    invitation_id = None
    if own.signup_requires_invitation:
        invitation_id = await services.invitations.claim(invitation)
        if invitation_id is None:  # used up by a parallel sign-up
            values["invitation"] = ""
            return page("signup.invalid_invitation", 400)
    try:
        account = await services.accounts.create(
            username=username, password_hash=password_hash, email=email, email_verified=False, name=name or None,
            roles=list(own.signup_roles), locale=locale,
        )
    except Conflict:
        if invitation_id:
            await services.invitations.release(invitation_id)
        values["username"] = ""
        return page("signup.username_taken", 409)
    await services.events.record(
        "signup", "success", account_id=account.account_id, ip=ip, user_agent=user_agent(request), invitation=invitation_id,
    )
    if services.mailer.enabled:
        await send_verification(services, account, email, locale=locale)
        message = translate(locale, "signup.done", username=account.username, hours=_hours(services))
    else:
        message = translate(locale, "signup.done_no_mail", username=account.username)
    return render(
        request, "notice.html", locale=locale, heading=translate(locale, "signup.done_heading"), notice_id="signup-done",
        message=message, link="/account", link_text=translate(locale, "signup.sign_in"),
    )


# --- e-mail verification --------------------------------------------------------------------------------


@html_page
async def email_verify(request: Request) -> Response:
    return await _guarded(request, "/email/verify", _email_verify)


def _invalid_verify_link(request: Request, locale: str) -> Response:
    return render(
        request, "notice.html", locale=locale, status_code=400, heading=translate(locale, "verify.title"),
        notice_id="invalid-link", message=translate(locale, "verify.invalid_link"), link="/account/profile",
        link_text=translate(locale, "verify.to_profile"),
    )


async def _email_verify(request: Request, services: Services) -> Response:
    locale = request_locale(request)
    link = await read_mailed_link(request, services, "verify", locale)
    if isinstance(link, Response):
        return link
    form, owner, account = link
    token = form.get("token", "")
    if (
        owner is None or account is None or account.disabled_at is not None or not owner.email
        or owner.email.lower() != (account.email or "").lower()
    ):
        return _invalid_verify_link(request, locale)
    if request.method == "GET":
        return _browser_form_page(
            request, "email_verify.html", locale=locale, purpose="verify", token=token, email=owner.email,
            username=account.username,
        )
    claimed = await services.account_tokens.claim(token, "verify")
    if claimed is None or not claimed.email or not await services.accounts.mark_email_verified(account.account_id, claimed.email):
        return _invalid_verify_link(request, locale)
    await services.events.record("email_verify", "success", account_id=account.account_id, ip=client_ip(request), user_agent=user_agent(request))
    return render(
        request, "notice.html", locale=locale, heading=translate(locale, "verify.done_heading"), notice_id="verify-done",
        message=translate(locale, "verify.done", email=claimed.email), link="/account/profile",
        link_text=translate(locale, "verify.to_profile"),
    )


# --- profile --------------------------------------------------------------------------------------------


@html_page
async def account_profile(request: Request) -> Response:
    return await _guarded(request, "/account/profile", _account_profile)


async def _account_profile(request: Request, services: Services) -> Response:
    found = await signed_in(request, services, "/account/profile")
    if isinstance(found, Response):
        return found
    _, account = found
    cookie = session_cookie(request)
    locale = request_locale(request)

    def page(current: Account, *, message: str | None = None, error: str | None = None, status_code: int = 200) -> Response:
        values = {"name": current.name or "", "email": current.email or "", "locale": current.locale if current.locale in SUPPORTED else ""}
        return render(
            request, "profile.html", locale=locale, status_code=status_code, values=values, verified=current.email_verified,
            username=current.username, csrf=form_token(cookie, "profile"), message=message,
            error=translate(locale, error) if error else None,
        )

    if request.method == "GET":
        return page(account)
    form = await checked_form(request, cookie, "profile")
    if isinstance(form, Response):
        return form
    action = form.get("action", "")
    ip = client_ip(request)
    if action == "resend":
        if not services.mailer.enabled or account.email_verified or not account.email:
            return error_page(request, "error.invalid_request", locale=locale)
        limited = await _mail_limit(request, services, account.email.lower(), locale)
        if limited is not None:
            return limited
        await send_verification(services, account, account.email, locale=locale)
        return page(account, message=translate(locale, "profile.verify_sent", email=account.email, hours=_hours(services)))
    if action != "save":
        return error_page(request, "error.invalid_request", locale=locale)

    name = clean_name(form.get("name", ""))
    chosen_locale = form.get("locale", "")
    raw_email = form.get("email", "").strip()
    email = normalise_email(raw_email) if raw_email else None
    if name is None:
        return page(account, error="profile.invalid_name", status_code=400)
    if chosen_locale not in ("", *SUPPORTED):
        return error_page(request, "error.invalid_request", locale=locale)
    if (raw_email and email is None) or (not raw_email and account.email):
        return page(account, error="reset.invalid_email", status_code=400)
    old_email = account.email
    email_changed = email is not None and email != (old_email or "").lower()
    if email_changed:
        refused = await _check_current_password(request, services, account, form.get("current_password", ""), page)
        if refused is not None:
            return refused
        if services.mailer.enabled:
            limited = await _mail_limit(request, services, email or "", locale)
            if limited is not None:
                return limited
    await services.accounts.set_profile(account.account_id, name=name or None, locale=chosen_locale or None)
    message = translate(locale, "profile.saved")
    if email_changed and email:
        await services.accounts.change_email(account.account_id, email)
        # Links for the old address stop working (and verification checks the address anyway).
        await services.account_tokens.retire(account.account_id, "verify")
        if old_email and account.email_verified:
            notify(services, account, "email_changed", locale=locale, to=old_email)
    fresh = await services.accounts.get(account.account_id) or account
    if email_changed and email and services.mailer.enabled:
        await send_verification(services, fresh, email, locale=locale)
        message = f'{message} {translate(locale, "profile.verify_sent", email=email, hours=_hours(services))}'
    await services.events.record(
        "profile", "updated", account_id=account.account_id, ip=ip, user_agent=user_agent(request), email_changed=email_changed,
    )
    return page(fresh, message=message)


async def _check_current_password(
    request: Request, services: Services, account: Account, presented: str, page: Callable[..., Response],
) -> Response | None:
    """Changing the address (which receives reset links) needs the current password; wrong ones count
    against the sign-in locks like on the password page, so a stolen session is no password oracle."""
    ip = client_ip(request)
    keys = [account_key(account.username), ip_key(ip)]
    locked = await services.lockout.locked_for(keys)
    if locked:
        response = page(account, error="login.locked", status_code=429)
        response.headers["Retry-After"] = str(locked)
        return response
    if not presented:
        return page(account, error="profile.password_needed", status_code=400)
    if await services.passwords.verify(account.password_hash, presented):
        await services.lockout.clear(keys[0])
        return None
    await services.events.record(
        "profile", "failure", account_id=account.account_id, ip=ip, user_agent=user_agent(request), reason="bad_password"
    )
    by_account = await services.lockout.failure(keys[0], services.limiter.account_policy())
    by_ip = await services.lockout.failure(keys[1], await services.limiter.ip_policy())
    if by_account.locked_for or by_ip.locked_for:
        await services.events.record("lockout", "locked", account_id=account.account_id, ip=ip, scope="profile")
    return page(account, error="password.wrong_current", status_code=401)


__all__ = ["account_profile", "clean_name", "email_verify", "send_verification", "signup"]
