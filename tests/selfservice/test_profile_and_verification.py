"""E-mail verification and the profile page (issue 14): a single-use mailed link (digest only, expiry)
sets email_verified; a link from before a later address change never verifies the new address; the
profile changes name and language, and a new address needs the current password, is unverified until
its link is used, and the old address is told. The OIDC claims follow the columns. Hostile input changes
nothing. Mail is read from a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select

from authserver.clock import FrozenClock
from authserver.storage.sql.models import AccountToken
from tests.support.apps import running_app
from tests.support.factories import form_field, make_user
from tests.support.lifecycle import issue
from tests.support.smtp import Inbox

PASSWORD = "crecida del río Aguán 2026"
ON = {"AUTHSERVER_SELF_SERVICE__SIGNUP": "true"}


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


async def confirm(http: httpx.AsyncClient, link: str) -> httpx.Response:
    page = await http.get(link)
    if page.status_code != 200:
        return page
    return await http.post("/email/verify", data={"csrf": form_field(page.text, "csrf"), "token": form_field(page.text, "token")})


async def save_profile(http: httpx.AsyncClient, *, headers: dict[str, str] | None = None, **fields: str) -> httpx.Response:
    page = await http.get("/account/profile", headers=headers)
    assert page.status_code == 200, page.text
    data = {"csrf": form_field(page.text, "csrf"), "action": "save", "name": form_field(page.text, "name"),
            "email": form_field(page.text, "email"), "locale": "", **fields}
    return await http.post("/account/profile", data=data, headers=headers)


async def test_the_verification_link_works_once_and_only_when_used(database_url: str, tmp_root: Path, inbox: Inbox) -> None:
    clock = FrozenClock()
    async with running_app(database_url, tmp_root, clock=clock, **ON, **inbox.env()) as (_, services, http):
        page = await http.get("/signup")
        username = f"v{hashlib.sha256(str(clock.now()).encode()).hexdigest()[:10]}"
        email = f"{username}@example.org"
        await http.post("/signup", data={"csrf": form_field(page.text, "csrf"), "username": username, "email": email,
                                         "new_password": PASSWORD, "confirm_password": PASSWORD})
        await services.mailer.drain()
        link = inbox.to(email)[0].link("/email/verify")
        token = token_of(link)
        async with services.sessions() as session:
            rows = (await session.scalars(select(AccountToken).where(AccountToken.purpose == "verify", AccountToken.email == email))).all()
        assert [r.token_digest for r in rows] == [hashlib.sha256(token.encode()).hexdigest()]
        # Opening the link (a mail scanner) verifies nothing.
        shown = await http.get(link)
        assert shown.status_code == 200 and email in shown.text
        account = await services.accounts.get_by_username(username)
        assert account is not None and not account.email_verified
        # A form from another browser is refused.
        async with httpx.AsyncClient(transport=http._transport, base_url=str(http.base_url)) as other:
            forged = await other.post("/email/verify", data={"csrf": form_field(shown.text, "csrf"), "token": token})
            assert forged.status_code == 403
        done = await confirm(http, link)
        assert done.status_code == 200 and 'data-notice="verify-done"' in done.text
        account = await services.accounts.get_by_username(username)
        assert account is not None and account.email_verified
        again = await confirm(http, link)
        assert again.status_code == 400 and 'data-notice="invalid-link"' in again.text
        # Expiry: a fresh link left for longer than self_service.verify_token_ttl stops working.
        await services.accounts.change_email(account.account_id, email)
        stale = await services.account_tokens.issue(account.account_id, "verify", ttl=86400, email=email)
        clock.advance(86401)
        assert (await confirm(http, f"/email/verify?token={stale}")).status_code == 400
        for bad in ("", "ev_nope", "pr_" + "x" * 43, "ev_" + "x" * 500):
            assert (await http.get("/email/verify", params={"token": bad})).status_code == 400


async def test_the_profile_changes_name_and_language_and_the_claims_follow(http: httpx.AsyncClient, services: object) -> None:
    issued = await issue(http, services)  # type: ignore[arg-type]
    page = await http.get("/account")
    assert 'id="account-profile-link"' in page.text
    saved = await save_profile(http, name="Ana Flores", locale="en")
    assert saved.status_code == 200 and 'id="profile-message"' in saved.text
    account = await services.accounts.get(issued.user.account_id)  # type: ignore[attr-defined]
    assert account.name == "Ana Flores" and account.locale == "en" and account.email_verified
    claims = (await http.get("/userinfo", headers={"Authorization": f"Bearer {issued.access}"})).json()
    assert claims["name"] == "Ana Flores" and claims.get("locale", "en") == "en"


async def test_a_new_address_needs_the_password_and_is_unverified_until_its_link(
    database_url: str, tmp_root: Path, inbox: Inbox
) -> None:
    async with running_app(database_url, tmp_root, **inbox.env()) as (_, services, http):
        issued = await issue(http, services)
        user = issued.user
        old = f"{user.username}@example.org"
        new = f"{user.username}.nuevo@example.org"
        assert (await save_profile(http, email=new)).status_code == 400  # no password
        wrong = await save_profile(http, email=new, current_password="not my password")
        assert wrong.status_code == 401
        account = await services.accounts.get(user.account_id)
        assert account is not None and account.email == old and account.email_verified
        # An older link for the old address, issued before the change.
        before = await services.account_tokens.issue(user.account_id, "verify", ttl=3600, email=old)
        changed = await save_profile(http, email=new.upper(), current_password=user.password)
        assert changed.status_code == 200 and "Te enviamos un enlace" in changed.text and 'data-verified="false"' in changed.text
        account = await services.accounts.get(user.account_id)
        assert account is not None and account.email == new and not account.email_verified
        claims = (await http.get("/userinfo", headers={"Authorization": f"Bearer {issued.access}"})).json()
        assert claims.get("email_verified") in (False, None)
        await services.mailer.drain()
        [notice] = inbox.to(old)
        assert notice.message["Subject"] == "Aviso de seguridad de tu cuenta de CMIPRO"
        assert "El correo de tu cuenta cambió" in notice.part("plain") and new not in notice.part("plain")
        [mail] = inbox.to(new)
        assert (await confirm(http, f"/email/verify?token={before}")).status_code == 400
        account = await services.accounts.get(user.account_id)
        assert account is not None and not account.email_verified
        # Resend: the newer link replaces the first.
        page = await http.get("/account/profile")
        resent = await http.post("/account/profile", data={"csrf": form_field(page.text, "csrf"), "action": "resend"})
        assert resent.status_code == 200
        await services.mailer.drain()
        first, second = (m.link("/email/verify") for m in inbox.to(new))
        assert first == mail.link("/email/verify")
        assert (await confirm(http, first)).status_code == 400
        assert (await confirm(http, second)).status_code == 200
        account = await services.accounts.get(user.account_id)
        assert account is not None and account.email_verified
        # Changing again makes the verified link of the previous address useless for the next one.
        stale = await services.account_tokens.issue(user.account_id, "verify", ttl=3600, email=new)
        await save_profile(http, email=old, current_password=user.password)
        assert (await confirm(http, f"/email/verify?token={stale}")).status_code == 400
        account = await services.accounts.get(user.account_id)
        assert account is not None and account.email == old and not account.email_verified


async def test_a_link_cannot_verify_an_address_the_account_no_longer_has(database_url: str, tmp_root: Path, inbox: Inbox) -> None:
    """Even a live link (not retired) whose address is no longer the account's is refused."""
    async with running_app(database_url, tmp_root, **inbox.env()) as (_, services, http):
        user = await make_user(services)
        link = await services.account_tokens.issue(user.account_id, "verify", ttl=3600, email="elsewhere@example.org")
        assert (await confirm(http, f"/email/verify?token={link}")).status_code == 400
        assert not await services.accounts.mark_email_verified(user.account_id, "elsewhere@example.org")


async def test_hostile_profile_input_changes_nothing(http: httpx.AsyncClient, services: object) -> None:
    issued = await issue(http, services)  # type: ignore[arg-type]
    before = await services.accounts.get(issued.user.account_id)  # type: ignore[attr-defined]
    page = await http.get("/account/profile")
    csrf = form_field(page.text, "csrf")
    cases = [
        ({"name": "Ana\x1b[31m"}, 400),
        ({"name": "x" * 201}, 400),
        ({"locale": "fr"}, 400),
        ({"email": "no address"}, 400),
        ({"email": ""}, 400),
        ({"action": "delete"}, 400),
        ({"csrf": "0" * 64}, 403),
    ]
    for case, status in cases:
        data = {"csrf": csrf, "action": "save", "name": "Ana", "email": before.email, "locale": "", **case}
        response = await http.post("/account/profile", data=data)
        assert response.status_code == status, (case, response.status_code)
        assert "\x1b" not in response.text
    duplicated = await http.post("/account/profile", headers={"content-type": "application/x-www-form-urlencoded"},
                                 content=f"csrf={csrf}&action=save&name=a&name=b&email=x%40example.org&locale=")
    assert duplicated.status_code == 400
    assert (await http.post("/account/profile", data={"csrf": csrf, "name": "a" * 70_000})).status_code == 413
    assert (await http.delete("/account/profile")).status_code == 405
    # Without mail, resending is refused too.
    assert (await http.post("/account/profile", data={"csrf": csrf, "action": "resend"})).status_code == 400
    async with httpx.AsyncClient(transport=http._transport, base_url=str(http.base_url)) as stranger:
        assert (await stranger.post("/account/profile", data={"csrf": csrf, "action": "save", "name": "x"})).status_code == 403
        assert (await stranger.get("/account/profile")).status_code == 303
    after = await services.accounts.get(issued.user.account_id)  # type: ignore[attr-defined]
    assert (after.name, after.email, after.locale, after.email_verified) == (before.name, before.email, before.locale, before.email_verified)


async def test_the_profile_in_english(http: httpx.AsyncClient, services: object) -> None:
    await issue(http, services)  # type: ignore[arg-type]
    english = {"accept-language": "en-GB,en;q=0.9"}
    response = await save_profile(http, headers=english, name="\x07")
    assert response.status_code == 400 and "at most 200 characters" in response.text and 'lang="en"' in response.text
