"""Password reset by a mailed link: the same answer for known and unknown addresses, a single-use link
stored as a SHA-256 digest that lasts self_service.reset_token_ttl, rate limits per address and per IP,
and a reset ends every session and token family. Mail is read from a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import hashlib
import re
import secrets
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from sqlalchemy import select

from authserver.clock import FrozenClock
from authserver.storage.sql.models import AccountToken
from tests.conftest import RUN_ID
from tests.support.apps import running_app
from tests.support.factories import form_field, make_user
from tests.support.lifecycle import is_active, issue, refresh, resource_server
from tests.support.smtp import Inbox

NEW_PASSWORD = "río Choluteca crece despacio"


def _email(username: str) -> str:
    return f"{username}@example.org"


async def ask(http: httpx.AsyncClient, email: str) -> httpx.Response:
    page = await http.get("/password/forgot")
    assert page.status_code == 200, page.text
    return await http.post("/password/forgot", data={"csrf": form_field(page.text, "csrf"), "email": email})


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


async def choose(http: httpx.AsyncClient, link: str, password: str = NEW_PASSWORD, confirm: str | None = None) -> httpx.Response:
    page = await http.get(link)
    assert page.status_code == 200, page.text
    return await http.post("/password/reset", data={
        "csrf": form_field(page.text, "csrf"), "token": form_field(page.text, "token"),
        "new_password": password, "confirm_password": password if confirm is None else confirm,
    })


async def can_sign_in(http: httpx.AsyncClient, services: object, user: object, password: str) -> bool:
    from tests.support.factories import Person, make_client, sign_in

    assert isinstance(user, Person)
    client = await make_client(services)  # type: ignore[arg-type]
    response = await http.get("/authorize", params={
        "response_type": "code", "client_id": client.client_id, "redirect_uri": client.info.redirect_uris[0],
        "scope": "openid", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256",
        "prompt": "login",
    })
    result = await sign_in(http, response.headers["location"], Person(user.account_id, user.username, password))
    return result.status_code == 303


async def test_known_and_unknown_addresses_get_the_same_answer_and_only_the_known_one_a_mail(
    database_url: str, tmp_root: Path, inbox: Inbox
) -> None:
    async with running_app(database_url, tmp_root, **inbox.env()) as (_, services, http):
        user = await make_user(services)
        known = await ask(http, _email(user.username).upper())
        unknown = await ask(http, "nobody-here@example.org")
        assert known.status_code == unknown.status_code == 200
        strip = re.compile(r'name="csrf" value="[^"]*"')
        assert strip.sub("", known.text) == strip.sub("", unknown.text)
        assert 'id="reset-sent"' in known.text and "30 minutos" in known.text
        await services.mailer.drain()
        assert inbox.to("nobody-here@example.org") == []
        [mail] = inbox.to(_email(user.username))
        assert mail.message["Subject"] == "Restablecer tu contraseña de CMIPRO"
        link = mail.link("/password/reset")
        assert link.startswith("http://testserver/password/reset?token=pr_")


async def test_the_link_sets_a_new_password_once_and_ends_every_session_and_family(
    database_url: str, tmp_root: Path, inbox: Inbox
) -> None:
    async with running_app(database_url, tmp_root, **inbox.env()) as (app, services, http):
        issued = await issue(http, services)
        rs = await resource_server(services)
        await ask(http, _email(issued.user.username))
        await services.mailer.drain()
        link = inbox.to(_email(issued.user.username))[0].link("/password/reset")
        # Opening the link (as a mail scanner would) does not use it.
        assert (await http.get(link)).status_code == 200
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as stranger:
            done = await choose(stranger, link)
        assert done.status_code == 200 and 'data-notice="reset-done"' in done.text
        assert await services.browser_sessions.get(http.cookies.get("authserver_session")) is None
        assert (await refresh(http, issued.client, issued.refresh)).status_code == 400
        assert not await is_active(http, rs, issued.access)
        assert not await can_sign_in(http, services, issued.user, issued.user.password)
        assert await can_sign_in(http, services, issued.user, NEW_PASSWORD)
        again = await http.get(link)
        assert again.status_code == 400 and 'data-notice="invalid-link"' in again.text


async def test_only_the_digest_is_stored_and_a_newer_link_retires_the_older(
    database_url: str, tmp_root: Path, inbox: Inbox
) -> None:
    async with running_app(database_url, tmp_root, **inbox.env()) as (_, services, http):
        user = await make_user(services)
        for _ in range(2):
            await ask(http, _email(user.username))
            await services.mailer.drain()  # one at a time: the order of arrival is the order of asking
        first, second = (token_of(m.link("/password/reset")) for m in inbox.to(_email(user.username)))
        async with services.sessions() as session:
            rows = (await session.scalars(select(AccountToken).where(AccountToken.account_id == user.account_id))).all()
        assert {r.token_digest for r in rows} == {hashlib.sha256(t.encode()).hexdigest() for t in (first, second)}
        assert all(first not in (r.token_digest, r.email) and r.purpose == "reset" for r in rows)
        assert (await http.get(f"/password/reset?token={first}")).status_code == 400
        assert (await choose(http, f"/password/reset?token={second}")).status_code == 200


async def test_the_link_expires_after_thirty_minutes(database_url: str, tmp_root: Path, inbox: Inbox) -> None:
    clock = FrozenClock()
    async with running_app(database_url, tmp_root, clock=clock, **inbox.env()) as (_, services, http):
        user = await make_user(services)
        await ask(http, _email(user.username))
        await services.mailer.drain()
        link = inbox.to(_email(user.username))[0].link("/password/reset")
        clock.advance(29 * 60)
        assert (await http.get(link)).status_code == 200
        clock.advance(61)
        assert (await http.get(link)).status_code == 400


async def test_bad_input_gets_a_4xx_page_and_leaves_the_link_usable(database_url: str, tmp_root: Path, inbox: Inbox) -> None:
    async with running_app(database_url, tmp_root, **inbox.env()) as (_, services, http):
        user = await make_user(services)
        await ask(http, _email(user.username))
        await services.mailer.drain()
        link = inbox.to(_email(user.username))[0].link("/password/reset")
        token = token_of(link)
        page = await http.get(link)
        csrf = form_field(page.text, "csrf")
        cases = [
            ({"csrf": csrf, "token": token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD + "x"}, 400, "no coinciden"),
            ({"csrf": csrf, "token": token, "new_password": "short", "confirm_password": "short"}, 400, "12 caracteres"),
            ({"csrf": csrf, "token": token, "new_password": "password1234", "confirm_password": "password1234"}, 400, "común"),
            ({"csrf": csrf, "token": token, "new_password": "x" * 300, "confirm_password": "x" * 300}, 400, "256"),
            ({"csrf": "forged", "token": token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}, 403, ""),
            ({"csrf": csrf, "token": "pr_" + "A" * 43, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}, 400, ""),
            ({"csrf": csrf, "token": "x" * 5000, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}, 400, ""),
            ({"csrf": csrf, "token": token + "\x00", "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD}, 400, ""),
        ]
        for data, status, text in cases:
            response = await http.post("/password/reset", data=data)
            assert response.status_code == status, (data, response.status_code)
            assert text in response.text
        duplicated = await http.post(
            "/password/reset", content=f"csrf={csrf}&token={token}&token={token}&new_password=a&confirm_password=a",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert duplicated.status_code == 400
        as_json = await http.post("/password/reset", json={"csrf": csrf, "token": token})
        assert as_json.status_code == 400
        for hostile in ("", "?token=", "?token=%00", "?token=" + "a" * 5000, "?token=pr_x&token=pr_y"):
            assert (await http.get(f"/password/reset{hostile}")).status_code == 400
        assert (await http.put("/password/reset")).status_code == 405
        account = await services.accounts.get(user.account_id)
        assert account is not None and await services.passwords.verify(account.password_hash, user.password)
        assert (await choose(http, link)).status_code == 200


async def test_forgot_form_rejects_bad_addresses_and_forged_forms(database_url: str, tmp_root: Path, inbox: Inbox) -> None:
    async with running_app(database_url, tmp_root, **inbox.env()) as (_, services, http):
        page = await http.get("/password/forgot")
        csrf = form_field(page.text, "csrf")
        for email in ("", "no-at-sign", "a@b@c", "a b@example.org", "x" * 400 + "@example.org", "a@example.org\r\nBcc: b@example.org"):
            response = await http.post("/password/forgot", data={"csrf": csrf, "email": email})
            assert response.status_code == 400, email
        assert (await http.post("/password/forgot", data={"csrf": "forged", "email": "a@example.org"})).status_code == 403
        async with httpx.AsyncClient(transport=http._transport, base_url="http://testserver") as other_browser:
            # A CSRF value is bound to the browser that got the form.
            response = await other_browser.post("/password/forgot", data={"csrf": csrf, "email": "a@example.org"})
            assert response.status_code == 403
        await services.mailer.drain()
        assert inbox.messages == []


async def test_requests_are_limited_per_address_and_per_ip(database_url: str, tmp_root: Path, inbox: Inbox) -> None:
    env = inbox.env(
        AUTHSERVER_ABUSE__PASSWORD_RESET_PER_ADDRESS="2", AUTHSERVER_ABUSE__PASSWORD_RESET_PER_IP="5",
        # Windows of its own: other tests' requests from 127.0.0.1 this minute do not count here.
        AUTHSERVER_CACHE__KEY_PREFIX=f"authserver-test-{RUN_ID}:{secrets.token_hex(4)}:",
    )
    async with running_app(database_url, tmp_root, **env) as (_, services, http):
        user = await make_user(services)
        statuses = [(await ask(http, _email(user.username))).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        unknown = [(await ask(http, "ghost@example.org")).status_code for _ in range(3)]
        assert unknown == [200, 200, 429], "the same limit whether or not an account has the address"
        others = [(await ask(http, f"other{i}@example.org")).status_code for i in range(2)]
        assert others == [429, 429], "five requests from this IP per minute"
        limited = await ask(http, "another@example.org")
        assert limited.headers["retry-after"] and "Demasiadas" in limited.text
        await services.mailer.drain()
        assert len(inbox.to(_email(user.username))) == 2


async def test_without_mail_the_pages_say_so_and_offer_nothing(database_url: str, tmp_root: Path) -> None:
    async with running_app(database_url, tmp_root) as (_, services, http):
        user = await make_user(services)
        page = await http.get("/password/forgot")
        assert page.status_code == 200 and 'id="reset-unavailable"' in page.text and 'id="forgot-form"' not in page.text
        posted = await http.post("/password/forgot", data={"csrf": "x", "email": _email(user.username)})
        assert 'id="reset-unavailable"' in posted.text
        assert (await http.get("/password/reset?token=pr_abc")).status_code == 404
        login = await http.get("/account", follow_redirects=True)
        assert 'id="forgot-link"' not in login.text
        async with services.sessions() as session:
            assert (await session.scalars(select(AccountToken).where(AccountToken.account_id == user.account_id))).all() == []


async def test_login_page_links_to_the_reset_page_in_english_too(database_url: str, tmp_root: Path, inbox: Inbox) -> None:
    async with running_app(database_url, tmp_root, **inbox.env()) as (_, _services, http):
        login = await http.get("/account", follow_redirects=True, headers={"accept-language": "en"})
        assert 'id="forgot-link"' in login.text and "Forgot your password?" in login.text
        page = await http.get("/password/forgot", headers={"accept-language": "en"})
        assert "Reset password" in page.text
