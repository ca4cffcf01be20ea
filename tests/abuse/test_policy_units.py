"""Client IP resolution, password policy (NIST SP 800-63B §5.1.1.2) and the security event log."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from argon2 import PasswordHasher

from authserver.accounts.passwords import (
    MAX_PASSWORD_CHARS,
    PasswordPolicyError,
    Passwords,
    common_passwords,
)
from authserver.cli import main
from authserver.protocol.client_ip import parse_networks, resolve
from authserver.settings import Settings, SettingsError, load_settings
from tests.abuse.conftest import login_page, post_login, running
from tests.conftest import environ_for
from tests.support.factories import PASSWORD, make_user

PROXIES = parse_networks(["10.0.0.1", "192.168.0.0/24"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("203.0.113.9", [], "203.0.113.9"),
        ("203.0.113.9", ["1.2.3.4"], "203.0.113.9"),  # not a trusted peer: header ignored
        ("10.0.0.1", ["1.2.3.4"], "1.2.3.4"),
        ("10.0.0.1", ["6.6.6.6, 1.2.3.4"], "1.2.3.4"),  # the left part is the client's own claim
        ("10.0.0.1", ["6.6.6.6, 1.2.3.4, 192.168.0.7"], "1.2.3.4"),  # chain of trusted proxies
        ("10.0.0.1", ["6.6.6.6", "1.2.3.4"], "1.2.3.4"),  # several header lines
        ("10.0.0.1", ["garbage"], "10.0.0.1"),
        ("10.0.0.1", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("10.0.0.1", ["1.2.3.4:5555"], "1.2.3.4"),
        ("::ffff:10.0.0.1", ["1.2.3.4"], "1.2.3.4"),
        (None, ["1.2.3.4"], "unknown"),
    ],
)
def test_client_ip(peer: str | None, forwarded: list[str], expected: str) -> None:
    assert resolve(peer, forwarded, PROXIES) == expected


def test_trusted_proxies_are_validated(backend: str, database_url: str, tmp_root) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SettingsError, match="trusted_proxies"):
        load_settings(environ_for(backend, database_url, tmp_root, AUTHSERVER_SECURITY__TRUSTED_PROXIES="not-an-ip"))
    with pytest.raises(SettingsError, match="abuse.account_failures"):
        load_settings(environ_for(backend, database_url, tmp_root, AUTHSERVER_ABUSE__ACCOUNT_FAILURES="0"))


async def test_forwarded_for_only_through_a_trusted_proxy(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings({"AUTHSERVER_SECURITY__TRUSTED_PROXIES": "10.9.9.9"}, login_per_ip=2)
    async with running(settings, ip="10.9.9.9") as run:
        for _ in range(2):
            assert (await run.http.get("/login?i=x", headers={"X-Forwarded-For": "198.51.100.1"})).status_code == 400
        assert (await run.http.get("/login?i=x", headers={"X-Forwarded-For": "198.51.100.1"})).status_code == 429
        assert (await run.http.get("/login?i=x", headers={"X-Forwarded-For": "198.51.100.2"})).status_code == 400
        async with run.client_from("203.0.113.50") as untrusted:
            for n in range(2):
                await untrusted.get("/login?i=x", headers={"X-Forwarded-For": f"198.51.100.{10 + n}"})
            assert (await untrusted.get("/login?i=x", headers={"X-Forwarded-For": "198.51.100.99"})).status_code == 429


def test_password_policy() -> None:
    passwords = Passwords(time_cost=1, memory_cost=1024)
    assert len(common_passwords()) >= 10_000
    for bad in ("short", "a" * 11, "x" * (MAX_PASSWORD_CHARS + 1), "111111111111", "  000000000000 ", "1qaz2wsx3edc"):
        with pytest.raises(PasswordPolicyError):
            passwords.check_policy(bad)
    passwords.check_policy("a long passphrase nobody uses")
    passwords.check_policy("ñandú río arriba")  # no composition rules, any characters


def test_production_argon2_parameters() -> None:
    stored = Passwords()._hasher.hash(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert not PasswordHasher(memory_cost=19 * 1024, time_cost=2, parallelism=1).check_needs_rehash(stored)


async def test_rehash_on_sign_in_when_parameters_change(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings()) as run:
        old = Passwords(time_cost=1, memory_cost=512)
        person = await make_user(run.services)
        await run.services.accounts.set_password_hash(person.account_id, await old.hash(PASSWORD))
        assert (await post_login(run.http, await login_page(run.http), person.username, PASSWORD)).status_code == 303
        account = await run.services.accounts.get(person.account_id)
        assert account is not None and account.password_hash is not None
        assert "m=1024" in account.password_hash and not run.services.passwords.needs_rehash(account.password_hash)


async def test_events_never_carry_secrets(make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture) -> None:
    secret_password = "my-secret-password-9f8e7d"
    async with running(make_settings()) as run:
        person = await make_user(run.services)
        with caplog.at_level(logging.INFO, logger="authserver.security"):
            form = await login_page(run.http)
            await post_login(run.http, form, person.username, secret_password)
            await run.services.events.record("test", "ok", password="x", client_secret="y", code="z", token="t", note="kept")
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "authserver.security"]
        assert any(line["event"] == "login" and line["outcome"] == "failure" for line in lines)
        assert secret_password not in caplog.text
        test_line = next(line for line in lines if line["event"] == "test")
        assert test_line["note"] == "kept" and not {"password", "client_secret", "code", "token"} & set(test_line)
        stored = await run.services.events.query(account_id=person.account_id, event="login")
        assert stored and stored[0]["ip"] == run.ip and stored[0]["request_id"]
        assert secret_password not in json.dumps(stored)


def test_unlock_and_events_cli(backend: str, database_url: str, tmp_root, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from authserver.accounts.lockout import Policy, account_key
    from authserver.app import build_services
    from tests.conftest import fast_passwords

    env = environ_for(backend, database_url, tmp_root)
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    async def lock() -> str:
        services = build_services(load_settings(env), passwords=fast_passwords())
        try:
            person = await make_user(services)
            failure = await services.lockout.failure(account_key(person.username), Policy(1, 3600, 60, 60))
            assert failure.locked_for == 60
            return person.username
        finally:
            await services.limiter.close()
            await services.cache.close()
            await services.engine.dispose()

    username = asyncio.run(lock())
    assert main(["user", "unlock", username]) == 0
    assert "unlocked" in capsys.readouterr().out
    assert main(["user", "unlock", username]) == 0
    assert "was not locked" in capsys.readouterr().out
    assert main(["events", "--user", username, "--event", "lockout", "--since", "1h", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["outcome"] for r in rows] == ["unlocked", "unlocked"]
