"""Security notices and MFA recovery (issue 14).

- A person whose password or second factor changes gets a notice mail (verified address, their language);
  a mail server that is down never breaks the change.
- A person who lost the phone signs in with the password and a backup code, is offered to set up a new
  authenticator at once (a single-use value on that page), and doing so removes the lost phone's secret
  and the remaining backup codes, ends every other session and token family, and leads to enrolment.
Mail is read from a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from authserver.mfa import totp
from authserver.mfa.service import is_enrolled
from tests.support.apps import running_app
from tests.support.factories import form_field, make_client, make_user
from tests.support.lifecycle import is_active, issue, refresh, resource_server
from tests.support.mfa import enrol, mfa_env, page_backup_codes, page_secret, submit, to_second_step
from tests.support.servers import free_port
from tests.support.smtp import Inbox

NEW_PASSWORD = "la lluvia en Tegucigalpa"


async def change_password(http: httpx.AsyncClient, current: str, **headers: str) -> httpx.Response:
    page = await http.get("/account/password", headers=headers)
    return await http.post("/account/password", headers=headers, data={
        "csrf": form_field(page.text, "csrf"), "current_password": current, "new_password": NEW_PASSWORD,
        "confirm_password": NEW_PASSWORD,
    })


async def test_a_password_change_sends_a_notice_in_the_persons_language(database_url: str, tmp_root: Path, inbox: Inbox) -> None:
    async with running_app(database_url, tmp_root, **inbox.env()) as (app, services, http):
        issued = await issue(http, services)
        assert (await change_password(http, issued.user.password)).status_code == 200
        await services.mailer.drain()
        [notice] = inbox.to(f"{issued.user.username}@example.org")
        assert notice.message["Subject"] == "Aviso de seguridad de tu cuenta de CMIPRO"
        assert notice.message.get_content_type() == "multipart/alternative"
        text = notice.part("plain")
        assert "La contraseña de tu cuenta cambió." in text and "http://testserver/password/forgot" in text
        assert NEW_PASSWORD not in text and issued.user.password not in text
        assert "La contraseña de tu cuenta cambió." in notice.part("html")

        english = await make_user(services, locale="en")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=str(http.base_url)) as browser:
            other = await issue(browser, services, user=english)
            assert (await change_password(browser, other.user.password)).status_code == 200
        await services.mailer.drain()
        [mail] = inbox.to(f"{english.username}@example.org")
        assert mail.message["Subject"] == "Security notice for your CMIPRO account"
        assert "The password of your account was changed." in mail.part("plain")


async def test_no_notice_to_an_unverified_address(database_url: str, tmp_root: Path, inbox: Inbox) -> None:
    async with running_app(database_url, tmp_root, **inbox.env()) as (_, services, http):
        user = await make_user(services)
        await services.accounts.change_email(user.account_id, f"{user.username}@example.org")  # unverified
        issued = await issue(http, services, user=user)
        assert (await change_password(http, issued.user.password)).status_code == 200
        await services.mailer.drain()
        assert inbox.to(f"{user.username}@example.org") == []


async def test_a_mail_server_that_is_down_never_breaks_the_change(database_url: str, tmp_root: Path) -> None:
    down = {"AUTHSERVER_MAIL__HOST": "127.0.0.1", "AUTHSERVER_MAIL__PORT": str(free_port()), "AUTHSERVER_MAIL__SECURITY": "none",
            "AUTHSERVER_MAIL__SENDER": "no-reply@cmipro.example", "AUTHSERVER_MAIL__TIMEOUT": "2"}
    async with running_app(database_url, tmp_root, **down) as (_, services, http):
        issued = await issue(http, services)
        changed = await change_password(http, issued.user.password)
        assert changed.status_code == 200 and 'id="password-message"' in changed.text
        await services.mailer.drain()
        account = await services.accounts.get(issued.user.account_id)
        assert account is not None and await services.passwords.verify(account.password_hash, NEW_PASSWORD)


def recovery_form(text: str) -> dict[str, str]:
    block = re.search(r'<form method="post" action="/account/mfa/recover" id="recover-form">(.*?)</form>', text, re.DOTALL)
    assert block, "no recovery form on the page"
    return {"csrf": form_field(block.group(1), "csrf"), "recovery": form_field(block.group(1), "recovery")}


async def test_a_lost_phone_leads_from_a_backup_code_to_a_new_authenticator(
    backend: str, database_url: str, tmp_root: Path, inbox: Inbox
) -> None:
    async with mfa_env(backend, database_url, tmp_root, **inbox.env()) as env:
        client = await make_client(env.services)
        user = await make_user(env.services)
        email = f"{user.username}@example.org"
        enrolled = await enrol(env.services, user.account_id)
        rs = await resource_server(env.services)
        async with env.client() as phone:
            env.clock.advance(30)
            pending = await to_second_step(phone, client, user)
            await submit(phone, pending, code=totp.code_at(enrolled.secret, env.clock.now()))
            there = await issue(phone, env.services, client=client, user=user)

            pending = await to_second_step(env.http, client, user)
            used = await submit(env.http, pending, backup_code=enrolled.backup_codes[0])
            assert used.status_code == 200 and 'id="recover"' in used.text and "¿Perdiste tu teléfono?" in used.text
            form = recovery_form(used.text)
            assert form["recovery"].startswith("mr_")

            started = await env.http.post("/account/mfa/recover", data=form)
            assert started.status_code == 303 and started.headers["location"] == "/account/mfa/enrol"
            account = await env.services.accounts.get(user.account_id)
            assert account is not None and not is_enrolled(account)
            assert await env.services.browser_sessions.get(phone.cookies.get("authserver_session")) is None
            assert (await refresh(phone, there.client, there.refresh)).status_code == 400
            assert not await is_active(env.http, rs, there.access)
            assert await env.services.browser_sessions.get(env.http.cookies.get("authserver_session")) is not None
            # The lost phone's codes and the remaining backup codes are gone.
            assert (await env.services.mfa.status(account)).backup_codes_remaining == 0

            page = await env.http.get("/account/mfa/enrol")
            secret = page_secret(page.text)
            assert secret != enrolled.secret
            env.clock.advance(30)
            done = await env.http.post("/account/mfa/enrol", data={"csrf": form_field(page.text, "csrf"), "code": totp.code_at(secret, env.clock.now())})
            assert done.status_code == 200 and len(page_backup_codes(done.text)) == 10
            account = await env.services.accounts.get(user.account_id)
            assert account is not None and is_enrolled(account)
            # The value worked once (the enrolment replaced the session: a form of the new one).
            csrf = form_field((await env.http.get("/account/mfa")).text, "csrf")
            again = await env.http.post("/account/mfa/recover", data={**form, "csrf": csrf})
            assert again.status_code == 400
            assert is_enrolled(await env.services.accounts.get(user.account_id))  # type: ignore[arg-type]

        await env.services.mailer.drain()
        texts = [m.part("plain") for m in inbox.to(email)]
        assert any("se quitó la aplicación de autenticación" in t for t in texts)
        assert any("Se activó la verificación en dos pasos" in t for t in texts)


async def test_recovery_is_refused_without_its_value_and_changes_nothing(
    backend: str, database_url: str, tmp_root: Path
) -> None:
    async with mfa_env(backend, database_url, tmp_root, AUTHSERVER_SELF_SERVICE__MFA_RECOVERY_TTL="600") as env:
        client = await make_client(env.services)
        user, stranger = await make_user(env.services), await make_user(env.services)
        enrolled = await enrol(env.services, user.account_id)
        theirs = await enrol(env.services, stranger.account_id)
        async with env.client() as other:
            pending = await to_second_step(other, client, stranger)
            their_form = recovery_form((await submit(other, pending, backup_code=theirs.backup_codes[0])).text)
        pending = await to_second_step(env.http, client, user)
        used = await submit(env.http, pending, backup_code=enrolled.backup_codes[0], )
        form = recovery_form(used.text)
        cases = [
            ({**form, "csrf": "0" * 40}, 403),
            ({**form, "recovery": ""}, 400),
            ({**form, "recovery": "mr_" + "x" * 43}, 400),
            ({**form, "recovery": their_form["recovery"]}, 400),  # another account's value
            ({"csrf": form["csrf"], "recovery": "x" * 5000}, 400),
        ]
        for data, status in cases:
            assert (await env.http.post("/account/mfa/recover", data=data)).status_code == status, data
        assert (await env.http.get("/account/mfa/recover")).status_code == 405
        assert (await env.http.post("/account/mfa/recover", headers={"content-type": "application/x-www-form-urlencoded"},
                                    content=f"csrf={form['csrf']}&recovery=a&recovery=b")).status_code == 400
        env.clock.advance(601)
        assert (await env.http.post("/account/mfa/recover", data=form)).status_code == 400
        for account_id in (user.account_id, stranger.account_id):
            account = await env.services.accounts.get(account_id)
            assert account is not None and is_enrolled(account)
        # Without a session: no recovery either.
        async with env.client() as anonymous:
            assert (await anonymous.post("/account/mfa/recover", data=form)).status_code in (303, 403)


async def test_mfa_changes_send_notices_in_english(backend: str, database_url: str, tmp_root: Path, inbox: Inbox) -> None:
    async with mfa_env(backend, database_url, tmp_root, **inbox.env()) as env:
        user = await make_user(env.services, locale="en")
        await issue(env.http, env.services, user=user)
        page = await env.http.get("/account/mfa/enrol")
        secret = page_secret(page.text)
        enrolled = await env.http.post("/account/mfa/enrol", data={"csrf": form_field(page.text, "csrf"), "code": totp.code_at(secret, env.clock.now())})
        codes = page_backup_codes(enrolled.text)
        page = await env.http.get("/account/mfa")
        regenerated = await env.http.post("/account/mfa/backup-codes", data={"csrf": form_field(page.text, "csrf"), "backup_code": codes[0]})
        assert regenerated.status_code == 200
        fresh = page_backup_codes(regenerated.text)
        page = await env.http.get("/account/mfa")
        off = await env.http.post("/account/mfa/disable", data={"csrf": form_field(page.text, "csrf"), "password": user.password, "backup_code": fresh[0]})
        assert off.status_code == 200
        await env.services.mailer.drain()
        texts = [m.part("plain") for m in inbox.to(f"{user.username}@example.org")]
        assert any("Two-step verification was turned on" in t for t in texts)
        assert any("New backup codes were generated" in t for t in texts)
        assert any("Two-step verification was turned off" in t for t in texts)
        assert all(c not in t for t in texts for c in codes + fresh)


async def test_the_json_api_sends_the_notices_too(backend: str, database_url: str, tmp_root: Path, inbox: Inbox) -> None:
    from tests.support.factories import ALL_SCOPES

    async with mfa_env(backend, database_url, tmp_root, **inbox.env()) as env:
        app_client = await make_client(env.services, scopes=[*ALL_SCOPES, "mfa:manage"], audience=[env.services.settings.server.issuer])
        mobile = await issue(env.http, env.services, client=app_client, scope="openid offline_access mfa:manage")
        auth = {"Authorization": f"Bearer {mobile.access}"}
        secret = (await env.http.post("/api/me/mfa/totp", headers=auth)).json()["secret"]
        done = await env.http.post("/api/me/mfa/totp/confirm", headers=auth, json={"code": totp.code_at(secret, env.clock.now())})
        codes = done.json()["backup_codes"]
        regenerated = await env.http.post("/api/me/mfa/backup-codes/regenerate", headers=auth, json={"backup_code": codes[0]})
        assert regenerated.status_code == 200, regenerated.text
        removed = await env.http.request("DELETE", "/api/me/mfa/totp", headers=auth, json={
            "password": mobile.user.password, "backup_code": regenerated.json()["backup_codes"][0]})
        assert removed.status_code == 200, removed.text
        await env.services.mailer.drain()
        texts = [m.part("plain") for m in inbox.to(f"{mobile.user.username}@example.org")]
        assert len(texts) == 3
        assert any("Se activó" in t for t in texts) and any("Se generaron" in t for t in texts) and any("Se desactivó" in t for t in texts)


async def test_a_password_reset_sends_a_notice(database_url: str, tmp_root: Path, inbox: Inbox) -> None:
    from tests.selfservice.test_password_reset import ask, choose

    async with running_app(database_url, tmp_root, **inbox.env()) as (_, services, http):
        user = await make_user(services)
        email = f"{user.username}@example.org"
        await ask(http, email)
        await services.mailer.drain()
        link = inbox.to(email)[0].link("/password/reset")
        assert (await choose(http, link)).status_code == 200
        await services.mailer.drain()
        notices = [m for m in inbox.to(email) if m.message["Subject"] == "Aviso de seguridad de tu cuenta de CMIPRO"]
        assert len(notices) == 1 and "se restableció con un enlace" in notices[0].part("plain")
