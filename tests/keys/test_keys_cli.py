"""`authserver keys list|rotate|revoke|reencrypt`, and rotating the key-encryption key itself."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import update

from authserver.cli import _kid_is_not_an_option, build_parser, main
from authserver.clock import FrozenClock
from authserver.keys.encryption import Encryptor, generate_key
from authserver.settings import Settings
from authserver.storage.sql.models import Account
from tests.conftest import environ_for
from tests.keys.conftest import client_token, running
from tests.support.factories import make_client, make_user

KEK_A, KEK_B = generate_key(), generate_key()


async def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str], *argv: str) -> tuple[int, str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    try:
        code = await asyncio.to_thread(main, list(argv))
    except SystemExit as exit_:
        raise AssertionError(f"{argv}: {capsys.readouterr()}") from exit_
    return code, capsys.readouterr().out


@pytest.fixture
def env(backend: str, fresh_database_url: str, tmp_root: Path) -> dict[str, str]:
    return environ_for(
        backend, fresh_database_url, tmp_root,
        AUTHSERVER_SECURITY__ENCRYPTION_KEYS=json.dumps({"a": KEK_A}),
        AUTHSERVER_SECURITY__ACTIVE_ENCRYPTION_KEY="a",
    )


async def test_list_rotate_revoke(
    env: dict[str, str], make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with running(make_settings(**env), FrozenClock()):
        pass
    code, out = await run_cli(monkeypatch, capsys, env, "keys", "list", "--json")
    listed = json.loads(out)
    assert code == 0
    assert sorted((k["alg"], k["state"]) for k in listed) == [
        ("ES256", "active"), ("ES256", "next"), ("RS256", "active"), ("RS256", "next")
    ]
    assert all(k["created_at"] and not k["needs_reencrypt"] for k in listed)
    next_es = next(k for k in listed if k["alg"] == "ES256" and k["state"] == "next")
    assert next_es["ready_at"] > next_es["created_at"]

    # The next key was published moments ago: rotating now would break cached verifiers, so it refuses.
    code, _ = await run_cli(monkeypatch, capsys, env, "keys", "rotate", "--alg", "ES256")
    assert code == 1
    code, out = await run_cli(monkeypatch, capsys, env, "keys", "rotate", "--alg", "ES256", "--force", "--json")
    assert code == 0 and json.loads(out)["activated"] == [next_es["kid"]]

    code, out = await run_cli(monkeypatch, capsys, env, "keys", "revoke", next_es["kid"], "--json")
    assert code == 0 and json.loads(out)["revoked"] == next_es["kid"]
    code, out = await run_cli(monkeypatch, capsys, env, "keys", "list", "--json")
    assert next_es["kid"] not in {k["kid"] for k in json.loads(out)}
    code, out = await run_cli(monkeypatch, capsys, env, "keys", "list", "--all", "--json")
    assert {k["kid"]: k["state"] for k in json.loads(out)}[next_es["kid"]] == "revoked"
    code, _ = await run_cli(monkeypatch, capsys, env, "keys", "revoke", "nope")
    assert code == 1


async def test_key_encryption_key_rotation(
    env: dict[str, str], make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FrozenClock()
    async with running(make_settings(**env), clock) as (_, services, http):
        person = await make_user(services)
        secret = b"JBSWY3DPEHPK3PXP"
        aad = person.account_id.encode()  # as authserver.mfa.service binds it
        async with services.sessions.begin() as session:
            await session.execute(
                update(Account).where(Account.account_id == person.account_id)
                .values(totp_secret_encrypted=services.encryptor.encrypt(secret, aad=aad))
            )
        client = await make_client(services, grant_types=["client_credentials"])

    both = env | {
        "AUTHSERVER_SECURITY__ENCRYPTION_KEYS": json.dumps({"a": KEK_A, "b": KEK_B}),
        "AUTHSERVER_SECURITY__ACTIVE_ENCRYPTION_KEY": "b",
    }
    code, out = await run_cli(monkeypatch, capsys, both, "keys", "list", "--json")
    assert all(k["needs_reencrypt"] for k in json.loads(out))
    code, out = await run_cli(monkeypatch, capsys, both, "keys", "reencrypt", "--json")
    assert code == 0 and json.loads(out) == {"reencrypted": 5, "current": 0, "failed": 0}  # 4 signing keys + 1 TOTP
    code, out = await run_cli(monkeypatch, capsys, both, "keys", "reencrypt", "--json")
    assert json.loads(out) == {"reencrypted": 0, "current": 5, "failed": 0}

    # The old key-encryption key can now be dropped from the configuration.
    only_b = both | {"AUTHSERVER_SECURITY__ENCRYPTION_KEYS": json.dumps({"b": KEK_B})}
    async with running(make_settings(**only_b), clock) as (_, services, http):
        assert await client_token(http, client)
        async with services.sessions() as session:
            stored = await session.get(Account, person.account_id)
        assert stored is not None and stored.totp_secret_encrypted is not None
        assert Encryptor({"b": KEK_B}, "b").decrypt(stored.totp_secret_encrypted, aad=aad) == secret


def test_a_kid_starting_with_a_dash_is_not_taken_for_an_option() -> None:
    # What `main` does before parsing: thumbprints are base64url and may begin with "-".
    parser = build_parser()
    args = parser.parse_args(_kid_is_not_an_option(["keys", "revoke", "-Ab3", "--json"]))
    assert args.kid == "-Ab3" and args.json is True
    args = parser.parse_args(_kid_is_not_an_option(["keys", "revoke", "--json", "--x"]))
    assert args.kid == "--x" and args.json is True
