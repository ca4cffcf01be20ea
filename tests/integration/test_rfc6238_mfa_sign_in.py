"""TOTP second factor at sign-in (RFC 6238 §5.2 replay, RFC 8176 amr, OIDC Core §2 acr/auth_time),
backup codes, the durable lock, and the MFA policy (role, client, acr_values, prompt=none/login)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import jwt as pyjwt
from sqlalchemy import select

from authserver.keys.encryption import Encryptor, generate_key, load_or_create_key_file
from authserver.mfa import totp
from authserver.mfa.service import ACR_MFA, ACR_PASSWORD, Context, MfaService
from authserver.storage.sql.mfa import SqlMfaStore
from authserver.storage.sql.models import Account, BackupCode, SecurityEvent
from tests.conftest import environ_for
from tests.support.factories import form_field, make_client, make_user, redeem, sign_in
from tests.support.mfa import (
    authorize_request,
    continue_link,
    enrol,
    follow_to_client,
    mfa_env,
    page_backup_codes,
    page_secret,
    submit,
    to_second_step,
)


def _wrong_code(secret: str, now: datetime) -> str:
    """A six-digit code that matches none of the accepted steps."""
    for candidate in ("000000", "111111", "222222", "333333"):
        if totp.matching_step(secret, candidate, now=now) is None:
            return candidate
    raise AssertionError("unlucky secret")


async def test_enrolled_user_signs_in_with_password_then_totp(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        client = await make_client(env.services)
        user = await make_user(env.services)
        enrolled = await enrol(env.services, user.account_id)
        env.clock.advance(30)
        pending = await to_second_step(env.http, client, user)
        # The password alone created no session: the account page still asks to sign in.
        assert (await env.http.get("/account")).headers["location"].startswith("/login")
        assert "autocomplete=\"one-time-code\"" in pending.page.text and "inputmode=\"numeric\"" in pending.page.text
        response = await submit(env.http, pending, code=totp.code_at(enrolled.secret, env.clock.now()))
        assert response.status_code == 303, response.text
        params = await follow_to_client(env.http, response)
        tokens = (await redeem(env.http, client, params["code"], pending.verifier)).json()
        id_token = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
        assert id_token["amr"] == ["pwd", "otp", "mfa"]
        assert id_token["acr"] == ACR_MFA
        assert id_token["auth_time"] == int(env.clock.now().timestamp())
        access = pyjwt.decode(tokens["access_token"], options={"verify_signature": False})
        assert {"otp", "mfa"} <= set(access["amr"]) and access["acr"] == ACR_MFA


async def test_password_only_sign_in_says_pwd(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        client = await make_client(env.services)
        user = await make_user(env.services)
        response, verifier = await authorize_request(env.http, client)
        response = await sign_in(env.http, response.headers["location"], user)
        params = await follow_to_client(env.http, response)
        tokens = (await redeem(env.http, client, params["code"], verifier)).json()
        id_token = pyjwt.decode(tokens["id_token"], options={"verify_signature": False})
        assert id_token["amr"] == ["pwd"] and id_token["acr"] == ACR_PASSWORD


async def test_a_code_is_accepted_once_and_earlier_steps_never(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        client = await make_client(env.services)
        user = await make_user(env.services)
        enrolled = await enrol(env.services, user.account_id)
        env.clock.advance(30)
        code = totp.code_at(enrolled.secret, env.clock.now())
        earlier = totp.code_at(enrolled.secret, env.clock.now() - timedelta(seconds=30))
        first = await to_second_step(env.http, client, user)
        assert (await submit(env.http, first, code=code)).status_code == 303
        async with env.client() as other:
            replay = await to_second_step(other, client, user)
            refused = await submit(other, replay, code=code)
            assert refused.status_code == 401
            assert "already used" in refused.text or "ya se usó" in refused.text
            assert (await submit(other, replay, code=earlier)).status_code == 401
            # Next step's code works.
            env.clock.advance(30)
            assert (await submit(other, replay, code=totp.code_at(enrolled.secret, env.clock.now()))).status_code == 303


async def test_five_wrong_codes_lock_the_second_step_durably(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        client = await make_client(env.services)
        user = await make_user(env.services)
        enrolled = await enrol(env.services, user.account_id)
        env.clock.advance(30)
        wrong = _wrong_code(enrolled.secret, env.clock.now())
        pending = await to_second_step(env.http, client, user)
        statuses = [(await submit(env.http, pending, code=wrong)).status_code for _ in range(5)]
        assert statuses == [401, 401, 401, 401, 429]
        good = totp.code_at(enrolled.secret, env.clock.now())
        locked = await submit(env.http, pending, code=good)
        assert locked.status_code == 429 and "Retry-After" in locked.headers
        assert "bloqueado durante 15 minutos" in locked.text
        # The lock shows at the password step after the right password (a wrong one: see the next test).
        async with env.client() as other:
            response, _ = await authorize_request(other, client)
            page = await other.get(response.headers["location"])
            answer = await other.post(
                "/login",
                data={"i": form_field(page.text, "i"), "csrf": form_field(page.text, "csrf"), "username": user.username, "password": user.password},
            )
            assert answer.status_code == 429 and "bloqueado" in answer.text
        # A second app instance with its own (empty) cache on the same database sees the same verdict.
        async with mfa_env(backend, database_url, tmp_root, AUTHSERVER_CACHE__URL="memory://") as fresh:
            fresh.clock.current = env.clock.now()
            assert await fresh.services.mfa.locked_until(user.account_id) is not None
        env.clock.advance(env.services.settings.mfa.lockout_seconds + 1)
        retry = await to_second_step(env.http, client, user)
        assert (await submit(env.http, retry, code=totp.code_at(enrolled.secret, env.clock.now()))).status_code == 303


async def test_wrong_password_on_an_mfa_locked_account_is_answered_like_any_wrong_password(
    backend: str, database_url: str, tmp_root: Path
) -> None:
    """No oracle: a wrong password gets the same status, page and events whether the account has a locked
    second step or no second factor at all."""
    async with mfa_env(backend, database_url, tmp_root) as env:
        client = await make_client(env.services)
        locked, plain = await make_user(env.services), await make_user(env.services)
        enrolled = await enrol(env.services, locked.account_id)
        env.clock.advance(30)
        wrong = _wrong_code(enrolled.secret, env.clock.now())
        pending = await to_second_step(env.http, client, locked)
        assert [(await submit(env.http, pending, code=wrong)).status_code for _ in range(5)][-1] == 429
        assert await env.services.mfa.locked_until(locked.account_id) is not None

        async def wrong_password(username: str) -> tuple[int, str, list[object]]:
            async with env.client() as browser:
                response, _ = await authorize_request(browser, client)
                page = await browser.get(response.headers["location"])
                i, csrf = form_field(page.text, "i"), form_field(page.text, "csrf")
                answer = await browser.post("/login", data={"i": i, "csrf": csrf, "username": username, "password": "wrong password!!"})
            text = answer.text.replace(i, "I").replace(csrf, "CSRF").replace(username, "USER")
            account_id = locked.account_id if username == locked.username else plain.account_id
            newest = (await env.services.events.query(account_id=account_id, event="login", limit=1))[0]
            return answer.status_code, text, [newest[k] for k in ("event", "outcome", "client_id", "ip", "details")]

        on_locked = await wrong_password(locked.username)
        on_plain = await wrong_password(plain.username)
        assert on_locked[0] == on_plain[0] == 401
        assert on_locked[1] == on_plain[1]
        assert on_locked[2] == on_plain[2] and on_plain[2][-1] == {"reason": "bad_password"}


async def test_backup_code_signs_in_once_and_warns_when_few_remain(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root, AUTHSERVER_MFA__BACKUP_CODE_COUNT="3") as env:
        client = await make_client(env.services)
        user = await make_user(env.services)
        enrolled = await enrol(env.services, user.account_id)
        assert len(enrolled.backup_codes) == 3
        pending = await to_second_step(env.http, client, user)
        used = await submit(env.http, pending, backup_code=enrolled.backup_codes[0].lower())
        assert used.status_code == 200, used.text
        assert 'id="backup-low"' in used.text and "2" in used.text
        params = await follow_to_client(env.http, used)
        tokens = (await redeem(env.http, client, params["code"], pending.verifier)).json()
        assert pyjwt.decode(tokens["id_token"], options={"verify_signature": False})["amr"] == ["pwd", "otp", "mfa"]
        async with env.client() as other:
            again = await to_second_step(other, client, user)
            assert (await submit(other, again, backup_code=enrolled.backup_codes[0])).status_code == 401
            assert (await submit(other, again, backup_code=enrolled.backup_codes[1])).status_code == 200


async def test_admin_is_taken_through_enrolment_before_the_flow_continues(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        client = await make_client(env.services)
        admin = await make_user(env.services, roles=["admin"])
        response, verifier = await authorize_request(env.http, client)
        response = await sign_in(env.http, response.headers["location"], admin)
        assert response.status_code == 303
        response = await env.http.get(response.headers["location"])  # resume → the mfa prompt
        assert response.headers["location"].startswith("/mfa?i=")
        response = await env.http.get(response.headers["location"])
        assert response.headers["location"].startswith("/mfa/enrol?i=")
        page = await env.http.get(response.headers["location"])
        assert page.status_code == 200 and "<svg" in page.text
        secret = page_secret(page.text)
        confirm = await env.http.post(
            "/mfa/enrol",
            data={"i": form_field(page.text, "i"), "csrf": form_field(page.text, "csrf"), "code": totp.code_at(secret, env.clock.now())},
        )
        assert confirm.status_code == 200, confirm.text
        assert len(page_backup_codes(confirm.text)) == 10
        assert 'download="cmipro-backup-codes.txt"' in confirm.text
        params = await follow_to_client(env.http, confirm)
        tokens = (await redeem(env.http, client, params["code"], verifier)).json()
        assert pyjwt.decode(tokens["id_token"], options={"verify_signature": False})["amr"] == ["pwd", "otp", "mfa"]
        row = await env.services.accounts.get(admin.account_id)
        assert row is not None and row.totp_enabled_at is not None


async def test_client_and_acr_values_require_mfa_and_step_up_a_password_session(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        relaxed = await make_client(env.services)
        strict = await make_client(env.services, require_mfa=True)
        user = await make_user(env.services)
        response, _ = await authorize_request(env.http, relaxed)
        await follow_to_client(env.http, await sign_in(env.http, response.headers["location"], user))
        # prompt=none cannot show the enrolment: interaction_required.
        response, _ = await authorize_request(env.http, strict, extra={"prompt": "none"})
        assert "error=interaction_required" in response.headers["location"]
        response, _ = await authorize_request(env.http, relaxed, extra={"acr_values": ACR_MFA})
        assert response.headers["location"].startswith("/mfa?i=")
        # Enrol from the account page, with the password session.
        page = await env.http.get("/account/mfa/enrol")
        secret = page_secret(page.text)
        done = await env.http.post("/account/mfa/enrol", data={"csrf": form_field(page.text, "csrf"), "code": totp.code_at(secret, env.clock.now())})
        assert done.status_code == 200 and len(page_backup_codes(done.text)) == 10
        assert continue_link(done.text) == "/account/mfa"
        # The upgraded session satisfies the strict client without another code.
        response, verifier = await authorize_request(env.http, strict)
        params = await follow_to_client(env.http, response)
        tokens = (await redeem(env.http, strict, params["code"], verifier)).json()
        assert pyjwt.decode(tokens["id_token"], options={"verify_signature": False})["amr"] == ["pwd", "otp", "mfa"]
        # prompt=login re-authenticates with both factors.
        env.clock.advance(60)
        response, _ = await authorize_request(env.http, strict, extra={"prompt": "login"})
        assert response.headers["location"].startswith("/login")
        response = await sign_in(env.http, response.headers["location"], user)
        assert response.headers["location"].startswith("/mfa?i=")


async def test_account_page_regenerates_and_disables(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        client = await make_client(env.services)
        user = await make_user(env.services)
        enrolled = await enrol(env.services, user.account_id)
        env.clock.advance(30)
        pending = await to_second_step(env.http, client, user)
        await submit(env.http, pending, code=totp.code_at(enrolled.secret, env.clock.now()))
        page = await env.http.get("/account/mfa")
        assert page.status_code == 200 and 'data-enabled="true"' in page.text
        csrf = form_field(page.text, "csrf")
        assert (await env.http.post("/account/mfa/backup-codes", data={"csrf": "forged", "backup_code": enrolled.backup_codes[0]})).status_code == 403
        regenerated = await env.http.post("/account/mfa/backup-codes", data={"csrf": csrf, "backup_code": enrolled.backup_codes[0]})
        assert regenerated.status_code == 200
        new_codes = page_backup_codes(regenerated.text)
        assert len(new_codes) == 10 and not set(new_codes) & set(enrolled.backup_codes)
        # Old codes no longer work; disabling needs the password too.
        refused = await env.http.post("/account/mfa/disable", data={"csrf": csrf, "password": user.password, "backup_code": enrolled.backup_codes[1]})
        assert refused.status_code == 401
        refused = await env.http.post("/account/mfa/disable", data={"csrf": csrf, "password": "not the password", "backup_code": new_codes[0]})
        assert refused.status_code == 401
        assert (await env.services.accounts.get(user.account_id)).totp_enabled_at is not None  # type: ignore[union-attr]
        done = await env.http.post("/account/mfa/disable", data={"csrf": csrf, "password": user.password, "backup_code": new_codes[0]})
        assert done.status_code == 200 and 'data-enabled="false"' in done.text
        account = await env.services.accounts.get(user.account_id)
        assert account is not None and account.totp_enabled_at is None and account.totp_secret_encrypted is None


async def test_secret_is_encrypted_bound_to_the_account_and_survives_key_rotation(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        user = await make_user(env.services)
        enrolled = await enrol(env.services, user.account_id)
        async with env.services.sessions() as session:
            stored = await session.scalar(select(Account.totp_secret_encrypted).where(Account.account_id == user.account_id))
        assert stored is not None and stored.startswith("v1.") and enrolled.secret not in stored
        old_keys, old_active = load_or_create_key_file(env.services.settings.security.key_file)
        rotated = Encryptor({**old_keys, "k-new": generate_key()}, "k-new")
        services = env.services
        mfa = MfaService(
            store=SqlMfaStore(services.sessions, env.clock), accounts=services.accounts, encryptor=rotated,
            passwords=services.passwords, events=services.events, clock=env.clock, settings=services.settings.mfa,
        )
        env.clock.advance(30)
        outcome = await mfa.verify(user.account_id, code=totp.code_at(enrolled.secret, env.clock.now()), method="totp", context=Context())
        assert outcome.ok
        async with env.services.sessions() as session:
            restored = await session.scalar(select(Account.totp_secret_encrypted).where(Account.account_id == user.account_id))
        assert restored is not None and restored.startswith("v1.k-new.")
        assert rotated.decrypt(restored, aad=user.account_id.encode()).decode() == enrolled.secret
        assert old_active != "k-new"


async def test_security_events_are_recorded_without_codes(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root, AUTHSERVER_MFA__MAX_FAILURES="2") as env:
        client = await make_client(env.services)
        user = await make_user(env.services)
        enrolled = await enrol(env.services, user.account_id)
        pending = await to_second_step(env.http, client, user)
        await submit(env.http, pending, backup_code=enrolled.backup_codes[0])
        env.clock.advance(30)
        async with env.client() as other:
            again = await to_second_step(other, client, user)
            wrong = _wrong_code(enrolled.secret, env.clock.now())
            await submit(other, again, code=wrong)
            await submit(other, again, code=wrong)
        await env.services.events.flush()
        async with env.services.sessions() as session:
            rows = (await session.scalars(select(SecurityEvent).where(SecurityEvent.account_id == user.account_id))).all()
        seen = {(r.event, r.outcome) for r in rows}
        assert {("mfa.enrolment", "started"), ("mfa.enrolment", "success"), ("mfa.verify", "success"),
                ("mfa.backup_code", "used"), ("mfa.verify", "failure"), ("mfa.lock", "locked")} <= seen
        dumped = json.dumps([r.details for r in rows], default=str)
        assert enrolled.secret not in dumped and wrong not in dumped
        assert not any(code in dumped or code.replace("-", "") in dumped for code in enrolled.backup_codes)


async def test_pages_in_spanish_by_default_and_english_on_request(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        client = await make_client(env.services)
        user = await make_user(env.services)
        await enrol(env.services, user.account_id)
        spanish = await to_second_step(env.http, client, user)
        assert "Ingresa el código" in spanish.page.text and 'lang="es"' in spanish.page.text
        english = await env.http.get(f"/mfa?i={spanish.interaction_id}", headers={"Accept-Language": "en-US,en;q=0.9"})
        assert "Enter the code" in english.text
        by_ui_locales = await to_second_step(env.http, client, user, extra={"ui_locales": "en"})
        assert "Enter the code" in by_ui_locales.page.text


async def test_hostile_input_on_mfa_pages_changes_nothing(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        client = await make_client(env.services)
        user = await make_user(env.services)
        enrolled = await enrol(env.services, user.account_id)
        env.clock.advance(30)
        pending = await to_second_step(env.http, client, user)
        assert (await env.http.post("/mfa", data={"i": pending.interaction_id, "csrf": "x", "code": "123456"})).status_code == 403
        assert (await env.http.post("/mfa", content=b"\xff\xfe", headers={"content-type": "application/json"})).status_code == 400
        assert (await env.http.get("/mfa?i=" + "x" * 500)).status_code == 400
        assert (await env.http.put("/mfa")).status_code == 405
        assert (await submit(env.http, pending, code="x" * 10_000)).status_code == 400
        account = await env.services.accounts.get(user.account_id)
        assert account is not None and account.mfa_failed_attempts == 0  # rejected requests changed nothing
        assert (await submit(env.http, pending, code="abcdef")).status_code == 401
        account = await env.services.accounts.get(user.account_id)
        assert account is not None and account.mfa_failed_attempts == 1  # a wrong code of any shape counts
        assert (await submit(env.http, pending, code=totp.code_at(enrolled.secret, env.clock.now()))).status_code == 303


async def test_operator_resets_mfa_from_the_command_line(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root, AUTHSERVER_MFA__MAX_FAILURES="1") as env:
        client = await make_client(env.services)
        user = await make_user(env.services)
        enrolled = await enrol(env.services, user.account_id)
        env.clock.advance(30)
        pending = await to_second_step(env.http, client, user)
        assert (await submit(env.http, pending, code=_wrong_code(enrolled.secret, env.clock.now()))).status_code == 429
        environ = {**os.environ, **environ_for(backend, database_url, tmp_root)}
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "authserver", "user", "reset-mfa", user.username],
            env=environ, capture_output=True, timeout=60,
        )
        assert done.returncode == 0, done.stderr
        account = await env.services.accounts.get(user.account_id)
        assert account is not None and account.totp_enabled_at is None and account.mfa_locked_until is None
        assert await env.services.mfa.locked_until(user.account_id) is None
        async with env.services.sessions() as session:
            left = (await session.scalars(select(BackupCode).where(BackupCode.account_id == user.account_id))).all()
        assert left == []


async def test_parallel_guesses_cannot_outrun_the_lock(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        client = await make_client(env.services)
        user = await make_user(env.services)
        enrolled = await enrol(env.services, user.account_id)
        env.clock.advance(30)
        pending = await to_second_step(env.http, client, user)
        wrong = _wrong_code(enrolled.secret, env.clock.now())
        answers = await asyncio.gather(*(submit(env.http, pending, code=wrong) for _ in range(12)))
        statuses = sorted(a.status_code for a in answers)
        # Attempts are numbered before any code is checked: exactly max_failures - 1 plain refusals.
        assert statuses == [401] * 4 + [429] * 8
        await env.services.events.flush()
        async with env.services.sessions() as session:
            checked = (
                await session.scalars(
                    select(SecurityEvent).where(
                        SecurityEvent.account_id == user.account_id, SecurityEvent.event == "mfa.verify",
                        SecurityEvent.outcome == "failure",
                    )
                )
            ).all()
        assert sum(1 for e in checked if e.details.get("reason") == "invalid") == 5


async def test_max_age_asks_for_both_factors_again(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        client = await make_client(env.services)
        user = await make_user(env.services)
        enrolled = await enrol(env.services, user.account_id)
        env.clock.advance(30)
        pending = await to_second_step(env.http, client, user)
        await follow_to_client(env.http, await submit(env.http, pending, code=totp.code_at(enrolled.secret, env.clock.now())))
        env.clock.advance(120)
        response, _ = await authorize_request(env.http, client, extra={"max_age": "60"})
        assert response.headers["location"].startswith("/login")
        after_password = await sign_in(env.http, response.headers["location"], user)
        assert after_password.headers["location"].startswith("/mfa?i=")
        page = await env.http.get(after_password.headers["location"])
        again = await env.http.post(
            "/mfa", data={"i": form_field(page.text, "i"), "csrf": form_field(page.text, "csrf"), "code": totp.code_at(enrolled.secret, env.clock.now())}
        )
        params = await follow_to_client(env.http, again)
        assert "code" in params
