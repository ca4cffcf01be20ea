"""Sign-up (issue 14): off unless self_service.signup; the same answer whether or not the e-mail address is
in use; password rules of the password page; a new account is unverified and gets a single-use link;
rate-limited per IP; invitation codes (digest only, use count, expiry, revocation) made through the admin
API and the CLI; hostile input changes nothing. Mail is read from a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from authserver.cli import main as cli_main
from authserver.clock import FrozenClock
from authserver.storage.sql.models import Account, Invitation
from tests.conftest import RUN_ID, environ_for
from tests.support.admin import admin_headers
from tests.support.apps import running_app
from tests.support.factories import form_field, make_user, unique
from tests.support.smtp import Inbox

PASSWORD = "crecida del río Aguán 2026"
ON = {"AUTHSERVER_SELF_SERVICE__SIGNUP": "true"}
INVITE_ONLY = {**ON, "AUTHSERVER_SELF_SERVICE__SIGNUP_REQUIRES_INVITATION": "true"}


def new_username() -> str:
    return unique("new").lower()[:40]


async def sign_up(http: httpx.AsyncClient, *, username: str, email: str, password: str = PASSWORD, confirm: str | None = None,
                  headers: dict[str, str] | None = None, **extra: str) -> httpx.Response:
    page = await http.get("/signup", headers=headers)
    assert page.status_code == 200, page.text
    data = {"csrf": form_field(page.text, "csrf"), "username": username, "email": email, "name": "María López",
            "new_password": password, "confirm_password": password if confirm is None else confirm, **extra}
    return await http.post("/signup", data=data, headers=headers)


async def account_count(services: object) -> int:
    async with services.sessions() as session:  # type: ignore[attr-defined]
        return int(await session.scalar(select(func.count()).select_from(Account)) or 0)


async def test_sign_up_is_off_by_default(database_url: str, tmp_root: Path) -> None:
    async with running_app(database_url, tmp_root) as (_, services, http):
        page = await http.get("/signup")
        assert page.status_code == 404 and 'id="signup-off"' in page.text and "signup-form" not in page.text
        before = await account_count(services)
        posted = await http.post("/signup", data={"username": "x", "email": "x@example.org"})
        assert posted.status_code == 404
        assert await account_count(services) == before
        login = await http.get("/account", follow_redirects=True)
        assert 'id="signup-link"' not in login.text


async def test_sign_up_makes_an_unverified_account_and_mails_a_link(database_url: str, tmp_root: Path, inbox: Inbox) -> None:
    async with running_app(database_url, tmp_root, **ON, **inbox.env()) as (_, services, http):
        login = await http.get("/account", follow_redirects=True)
        assert 'id="signup-link"' in login.text
        username = new_username()
        email = f"{username}@example.org"
        done = await sign_up(http, username=username.upper(), email=email.upper())
        assert done.status_code == 200 and 'data-notice="signup-done"' in done.text and "24 horas" in done.text
        account = await services.accounts.get_by_username(username)
        assert account is not None and account.email == email and not account.email_verified
        assert account.roles == ["free_user"] and account.locale == "es" and account.name == "María López"
        assert account.password_hash and account.password_hash.startswith("$argon2id$")
        assert await services.passwords.verify(account.password_hash, PASSWORD)
        await services.mailer.drain()
        [mail] = inbox.to(email)
        assert mail.message["Subject"] == "Confirma tu correo de CMIPRO"
        assert mail.link("/email/verify").startswith("http://testserver/email/verify?token=ev_")


async def test_the_answer_says_nothing_about_the_address_being_in_use(database_url: str, tmp_root: Path, inbox: Inbox) -> None:
    async with running_app(database_url, tmp_root, **ON, **inbox.env()) as (_, services, http):
        owner = await make_user(services)
        taken = f"{owner.username}@example.org"
        first, second = new_username(), new_username()
        used = await sign_up(http, username=first, email=taken)
        fresh = await sign_up(http, username=second, email=f"{second}@example.org")
        assert used.status_code == fresh.status_code == 200
        assert used.text.replace(first, "NAME") == fresh.text.replace(second, "NAME")
        await services.mailer.drain()
        # Each gets a link for its own new account; the owner's account is untouched and stays verified.
        assert len(inbox.to(taken)) == 1 and len(inbox.to(f"{second}@example.org")) == 1
        existing = await services.accounts.get(owner.account_id)
        assert existing is not None and existing.email_verified


async def test_bad_input_is_refused_and_creates_nothing(database_url: str, tmp_root: Path) -> None:
    async with running_app(database_url, tmp_root, **ON) as (_, services, http):
        owner = await make_user(services)
        before = await account_count(services)
        cases = [
            ({"username": owner.username}, 409, "no está disponible"),
            ({"username": "ab"}, 400, "de 3 a 40"),
            ({"username": "ana maría"}, 400, "de 3 a 40"),
            ({"username": "ana\x00"}, 400, ""),  # the strict form reader refuses NUL before the page looks
            ({"email": "not-an-address"}, 400, "correo válida"),
            ({"email": "a\r\nBcc: x@example.org"}, 400, "correo válida"),
            ({"name": "Ana\x07"}, 400, "200 caracteres"),
            ({"name": "A" * 201}, 400, "200 caracteres"),
            ({"password": "corta", "confirm": "corta"}, 400, "12 caracteres"),
            ({"password": "password1234", "confirm": "password1234"}, 400, "común"),
            ({"confirm": PASSWORD + "!"}, 400, "no coinciden"),
            ({"password": "y" * 257, "confirm": "y" * 257}, 400, "256"),
        ]
        for case, status, text in cases:
            values = {"username": new_username(), "email": "ok@example.org", **case}
            page = await http.get("/signup")
            data = {"csrf": form_field(page.text, "csrf"), "username": values["username"], "email": values["email"],
                    "name": values.get("name", ""), "new_password": values.get("password", PASSWORD),
                    "confirm_password": values.get("confirm", values.get("password", PASSWORD))}
            response = await http.post("/signup", data=data)
            assert response.status_code == status and text in response.text, (case, response.status_code)
            assert "\x00" not in response.text and "\x07" not in response.text
        page = await http.get("/signup")
        csrf = form_field(page.text, "csrf")
        forged = await http.post("/signup", data={"csrf": "0" * 64, "username": new_username(), "email": "a@example.org",
                                                  "new_password": PASSWORD, "confirm_password": PASSWORD})
        assert forged.status_code == 403
        async with httpx.AsyncClient(transport=http._transport, base_url=str(http.base_url)) as other:  # another browser
            assert (await other.post("/signup", data={"csrf": csrf, "username": new_username(), "email": "a@example.org",
                                                      "new_password": PASSWORD, "confirm_password": PASSWORD})).status_code == 403
        duplicated = await http.post(
            "/signup", headers={"content-type": "application/x-www-form-urlencoded"},
            content=f"csrf={csrf}&username=dup1&username=dup2&email=a%40example.org&new_password=x&confirm_password=x",
        )
        assert duplicated.status_code == 400
        huge = await http.post("/signup", data={"csrf": csrf, "username": "a" * 70_000})
        assert huge.status_code == 413
        assert (await http.put("/signup")).status_code == 405
        assert await account_count(services) == before


async def test_sign_up_is_rate_limited_per_ip_and_in_english(database_url: str, tmp_root: Path) -> None:
    async with running_app(
        database_url, tmp_root, **ON, AUTHSERVER_ABUSE__SIGNUP_PER_IP="2",
        AUTHSERVER_CACHE__KEY_PREFIX=f"authserver-test-{RUN_ID}:{secrets.token_hex(4)}:",  # counters of its own
    ) as (_, services, http):
        english = {"accept-language": "en-US,en;q=0.9"}
        taken = await make_user(services)
        for _ in range(2):
            refused = await sign_up(http, username=taken.username, email="a@example.org", headers=english)
            assert refused.status_code == 409 and "not available" in refused.text and 'lang="en"' in refused.text
        limited = await sign_up(http, username=new_username(), email="a@example.org", headers=english)
        assert limited.status_code == 429 and limited.headers["retry-after"]


async def test_invitation_codes_are_single_use_digests_with_expiry(database_url: str, tmp_root: Path) -> None:
    clock = FrozenClock()
    async with running_app(database_url, tmp_root, clock=clock, **INVITE_ONLY) as (_, services, http):
        page = await http.get("/signup")
        assert 'id="invitation"' in page.text
        headers = await admin_headers(http, services)
        made = await http.post("/admin/api/invitations", json={"max_uses": 1, "note": "Brigada La Ceiba"}, headers=headers)
        assert made.status_code == 201, made.text
        body = made.json()
        code = body["code"]
        assert code.startswith("inv_") and body["state"] == "active" and body["uses"] == 0
        async with services.sessions() as session:
            row = await session.get(Invitation, body["invitation_id"])
        assert row is not None and row.code_digest == hashlib.sha256(code.encode()).hexdigest()
        assert code not in json.dumps((await http.get("/admin/api/invitations", headers=headers)).json())

        before = await account_count(services)
        for wrong in ("", "inv_" + "x" * 43, "nonsense", "inv_\x07"):
            refused = await sign_up(http, username=new_username(), email="a@example.org", invitation=wrong)
            assert refused.status_code == 400 and "invitación no es válido" in refused.text
        assert await account_count(services) == before
        # A taken username does not use the code up.
        owner = await make_user(services)
        assert (await sign_up(http, username=owner.username, email="a@example.org", invitation=code)).status_code == 409
        ok = await sign_up(http, username=new_username(), email="a@example.org", invitation=code)
        assert ok.status_code == 200 and 'data-notice="signup-done"' in ok.text
        again = await sign_up(http, username=new_username(), email="a@example.org", invitation=code)
        assert again.status_code == 400
        listed = (await http.get(f"/admin/api/invitations/{body['invitation_id']}", headers=headers)).json()
        assert listed["uses"] == 1 and listed["state"] == "used"

        short = (await http.post("/admin/api/invitations", json={"max_uses": 3, "ttl_seconds": 600}, headers=headers)).json()
        clock.advance(601)
        expired = await sign_up(http, username=new_username(), email="a@example.org", invitation=short["code"])
        assert expired.status_code == 400
        revoked = (await http.post("/admin/api/invitations", json={}, headers=headers)).json()
        assert (await http.delete(f"/admin/api/invitations/{revoked['invitation_id']}", headers=headers)).json()["state"] == "revoked"
        assert (await sign_up(http, username=new_username(), email="a@example.org", invitation=revoked["code"])).status_code == 400
        for bad in ({"max_uses": 0}, {"max_uses": "2"}, {"ttl_seconds": 10}, {"note": "a\x00b"}, {"extra": 1}):
            assert (await http.post("/admin/api/invitations", json=bad, headers=headers)).status_code == 400, bad
        assert (await http.get("/admin/api/invitations/nope", headers=headers)).status_code == 404
        assert (await http.get("/admin/api/invitations/a%00b", headers=headers)).status_code == 404
        assert (await http.delete("/admin/api/invitations/a%00b", headers=headers)).status_code == 404
        assert (await http.post("/admin/api/invitations", json={})).status_code == 401


async def test_parallel_sign_ups_cannot_overuse_a_code(database_url: str, tmp_root: Path) -> None:
    import asyncio

    async with running_app(database_url, tmp_root, **INVITE_ONLY) as (app, services, http):
        made = await services.invitations.create(ttl=600, max_uses=2, created_by="test")
        browsers = [httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=str(http.base_url)) for _ in range(5)]
        try:
            results = await asyncio.gather(*(
                sign_up(b, username=new_username(), email="a@example.org", invitation=made.code) for b in browsers
            ))
        finally:
            for b in browsers:
                await b.aclose()
        assert sorted(r.status_code for r in results) == [200, 200, 400, 400, 400]
        row = await services.invitations.get(made.invitation.invitation_id)
        assert row is not None and row.uses == 2


@pytest.mark.parametrize("backend", ["sqlite"])
def test_invitation_cli_creates_lists_and_revokes(backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/cli-{RUN_ID}.db"
    for name, value in environ_for(backend, url, tmp_path).items():
        monkeypatch.setenv(name, value)
    assert cli_main(["migrate"]) == 0
    capsys.readouterr()
    assert cli_main(["invitation", "create", "--uses", "3", "--note", "Escuela Tela", "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert made["code"].startswith("inv_") and made["max_uses"] == 3 and made["created_by"].startswith("cli")
    assert cli_main(["invitation", "list", "--json"]) == 0
    listed = capsys.readouterr().out
    assert made["invitation_id"] in listed and made["code"] not in listed and "Escuela Tela" in listed
    assert cli_main(["invitation", "revoke", made["invitation_id"], "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "revoked"
    with pytest.raises(SystemExit, match="max_uses"):
        cli_main(["invitation", "create", "--uses", "0"])



@pytest.mark.parametrize("env", [
    {"AUTHSERVER_SELF_SERVICE__SIGNUP_ROLES": '["admin"]'},
    {"AUTHSERVER_SELF_SERVICE__SIGNUP_ROLES": '["nobody"]'},
    {"AUTHSERVER_SELF_SERVICE__INVITATION_TTL": "10"},
    {"AUTHSERVER_SELF_SERVICE__MFA_RECOVERY_TTL": "5"},
])
def test_sign_up_settings_are_checked(env: dict[str, str]) -> None:
    from authserver.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="self_service"):
        load_settings(env)
    load_settings({"AUTHSERVER_SELF_SERVICE__SIGNUP_ROLES": '["free_user", "premium_user"]', "AUTHSERVER_SELF_SERVICE__SIGNUP": "true"})
