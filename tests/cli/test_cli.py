"""The `authserver` command line against real databases: migrate, clients, users, and --help everywhere.

Commands run through :func:`authserver.cli.main` in a worker thread (they call ``asyncio.run``), with
their settings in the environment exactly as an operator would give them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import create_async_engine

from authserver.cli import build_parser, main
from authserver.services import Services
from authserver.storage.sql.models import SecurityEvent
from tests.conftest import create_pg_database, drop_pg_database, environ_for
from tests.support.factories import unique

STRONG = "a long enough passphrase"


@dataclass
class Result:
    code: int
    out: str
    err: str


def _run(argv: list[str], stdin: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    saved_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:
                if isinstance(exit_.code, str):
                    err.write(exit_.code + "\n")
                    code = 1
                else:
                    code = exit_.code or 0
    finally:
        sys.stdin = saved_stdin
    return Result(code, out.getvalue(), err.getvalue())


async def cli(*argv: str, stdin: str = "") -> Result:
    return await asyncio.to_thread(_run, list(argv), stdin)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, backend: str, database_url: str, tmp_root: Path) -> None:
    """The CLI reads its settings from the environment: point it at this backend's test database."""
    for key, value in environ_for(backend, database_url, tmp_root).items():
        monkeypatch.setenv(key, value)


@pytest.fixture
async def fresh_database(monkeypatch: pytest.MonkeyPatch, backend: str, tmp_path: Path) -> str:  # type: ignore[misc]
    if backend == "postgres":
        name = await create_pg_database()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    for key, value in environ_for(backend, url, tmp_path).items():
        monkeypatch.setenv(key, value)
    yield url
    if backend == "postgres":
        await drop_pg_database(name)


async def alembic_version(url: str) -> str | None:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
    finally:
        await engine.dispose()


async def test_migrate_creates_the_schema_and_is_idempotent(fresh_database: str) -> None:
    before = await cli("client", "list")
    assert before.code != 0
    assert "authserver migrate" in before.err and "Traceback" not in before.err
    first = await cli("migrate")
    assert first.code == 0, first.err
    assert "database at head" in first.out
    assert await alembic_version(fresh_database)
    again = await cli("migrate")
    assert again.code == 0, again.err
    listing = await cli("client", "list", "--json")
    assert listing.code == 0 and json.loads(listing.out) == []


async def test_confidential_client_secret_is_printed_once(cli_env: None, services: Services) -> None:
    client_id = unique("cli-svc")
    created = await cli(
        "client", "create", "--name", "Gauge importer", "--type", "confidential", "--client-id", client_id,
        "--grant", "client_credentials", "--scope", "read:levels", "--audience", "https://api.cmipro.example", "--json",
    )
    assert created.code == 0, created.err
    body = json.loads(created.out)
    assert body["client_id"] == client_id
    assert body["client_type"] == "confidential"
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    secret = body["client_secret"]
    assert secret
    stored = await services.clients.get(client_id)
    assert stored is not None and stored.check_secret(secret, services.clock.now())

    listing = await cli("client", "list", "--json")
    assert listing.code == 0, listing.err
    clients = json.loads(listing.out)
    assert client_id in [c["client_id"] for c in clients]
    assert secret not in listing.out
    assert not any("client_secret" in c for c in clients)
    plain = await cli("client", "list")
    assert client_id in plain.out and secret not in plain.out


async def test_human_output_warns_that_the_secret_is_shown_once(cli_env: None) -> None:
    created = await cli("client", "create", "--name", "Ops", "--type", "confidential", "--grant", "client_credentials")
    assert created.code == 0, created.err
    assert "client_secret" in created.out
    assert "shown only now" in created.err


async def test_public_client_has_no_secret(cli_env: None, services: Services) -> None:
    client_id = unique("cli-spa")
    created = await cli(
        "client", "create", "--name", "Mapa", "--type", "public", "--client-id", client_id,
        "--grant", "authorization_code", "--grant", "refresh_token",
        "--redirect-uri", "https://mapa.cmipro.example/callback", "--scope", "openid", "--json",
    )
    assert created.code == 0, created.err
    body = json.loads(created.out)
    assert "client_secret" not in body
    assert body["token_endpoint_auth_method"] == "none"
    assert body["redirect_uris"] == ["https://mapa.cmipro.example/callback"]
    stored = await services.clients.get(client_id)
    assert stored is not None and stored.secrets == ()


@pytest.mark.parametrize(
    "uri",
    [
        "http://app.example/callback", "https://app.example/cb#frag", "/relative/callback", "javascript:alert(1)",
        "https://*.app.example/cb", "https://user@app.example/cb", "myapp:/cb",
    ],
)
async def test_bad_redirect_uri_is_refused_with_a_clear_message(cli_env: None, services: Services, uri: str) -> None:
    client_id = unique("cli-bad")
    result = await cli(
        "client", "create", "--name", "Bad", "--type", "public", "--client-id", client_id,
        "--grant", "authorization_code", "--redirect-uri", uri,
    )
    assert result.code != 0
    assert "client not created" in result.err and "redirect_uris[0]" in result.err and repr(uri) in result.err
    assert "must be absolute" in result.err and "Traceback" not in result.err
    services.clients.forget(client_id)
    assert await services.clients.get(client_id) is None


async def test_repeated_scopes_and_redirect_uris_are_stored_once_in_order(cli_env: None, services: Services) -> None:
    client_id = unique("cli-rep")
    created = await cli(
        "client", "create", "--name", "Rep", "--type", "public", "--client-id", client_id, "--grant", "authorization_code",
        "--redirect-uri", "https://a.example/cb", "--redirect-uri", "https://a.example/cb",
        "--scope", "read:levels", "--scope", "openid", "--scope", "read:levels", "--json",
    )
    assert created.code == 0, created.err
    body = json.loads(created.out)
    assert body["scopes"] == ["read:levels", "openid"] and body["redirect_uris"] == ["https://a.example/cb"]
    services.clients.forget(client_id)
    stored = await services.clients.get(client_id)
    assert stored is not None and stored.scopes == ("read:levels", "openid")


async def test_bad_post_logout_redirect_uri_is_refused(cli_env: None, services: Services) -> None:
    client_id = unique("cli-plo")
    result = await cli(
        "client", "create", "--name", "Bad", "--type", "public", "--client-id", client_id, "--grant", "authorization_code",
        "--redirect-uri", "https://a.example/cb", "--post-logout-redirect-uri", "https://a.example/bye#x",
    )
    assert result.code != 0 and "post_logout_redirect_uris[0]" in result.err and "must be absolute" in result.err
    services.clients.forget(client_id)
    assert await services.clients.get(client_id) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "public", "--grant", "authorization_code"], "redirect URI"),
        (["--type", "public", "--grant", "client_credentials"], "confidential"),
        (["--type", "confidential", "--auth-method", "none"], "client_secret"),
        (["--type", "confidential", "--scope", "read:everything"], "unknown scope"),
    ],
)
async def test_invalid_client_definitions_fail_without_a_traceback(
    cli_env: None, services: Services, args: list[str], message: str
) -> None:
    client_id = unique("cli-inv")
    result = await cli("client", "create", "--name", "X", "--client-id", client_id, *args)
    assert result.code != 0
    assert message in result.err and "Traceback" not in result.err
    services.clients.forget(client_id)
    assert await services.clients.get(client_id) is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--type", "confidential", "--grant", "client_credentials", "--audience", "not a uri"], "audience[0] 'not a uri': must be an absolute URI"),
        (["--type", "confidential", "--grant", "client_credentials", "--access-token-ttl", "5"], "access_token_ttl: must be at least 60"),
        (["--type", "confidential", "--grant", "client_credentials", "--scope", "bad\"scope"], "is not a scope token"),
        (["--type", "confidential", "--client-id", "x"], "client_id: has characters that are not allowed"),
        (["--type", "confidential", "--grant", "refresh_token"], "refresh_token needs authorization_code"),
    ],
)
async def test_client_create_applies_the_admin_validation(cli_env: None, services: Services, args: list[str], message: str) -> None:
    """The CLI writes through AdminService: what the admin API refuses, the CLI refuses with the same words
    (before issue 16 it wrote to the store directly and stored these)."""
    client_id = unique("cli-val")
    result = await cli("client", "create", "--name", "X", "--client-id", client_id, *args)
    assert result.code != 0 and message in result.err and "Traceback" not in result.err, result.err
    services.clients.forget(client_id)
    assert await services.clients.get(client_id) is None


async def test_client_create_is_recorded_as_an_admin_change_by_the_cli(cli_env: None, services: Services) -> None:
    client_id = unique("cli-evt")
    assert (await cli("client", "create", "--name", "E", "--type", "confidential", "--client-id", client_id)).code == 0
    await services.events.flush()
    async with services.sessions() as session:
        rows = (await session.scalars(select(SecurityEvent).where(SecurityEvent.client_id == client_id))).all()
    assert [(r.event, r.details["actor"]["via"]) for r in rows] == [("admin.client_created", "cli")]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "superhero"], "roles[0] 'superhero': unknown role"),
        (["--email", "no-at-sign"], "email: must be an e-mail address"),
    ],
)
async def test_user_create_applies_the_admin_validation(cli_env: None, services: Services, args: list[str], message: str) -> None:
    username = unique("cli-uval")
    result = await cli("user", "create", username, *args, "--password-stdin", stdin=STRONG + "\n")
    assert result.code != 0 and message in result.err and "Traceback" not in result.err, result.err
    assert await services.accounts.get_by_username(username) is None


async def test_user_commands_of_an_unknown_user_fail_cleanly(cli_env: None) -> None:
    for argv in (("user", "disable", "nobody-here"), ("user", "reset-mfa", "nobody-here"), ("user", "set-roles", "nobody-here")):
        result = await cli(*argv)
        assert result.code != 0 and "No such user." in result.err and "Traceback" not in result.err, (argv, result.err)


async def test_duplicate_client_id_is_refused(cli_env: None) -> None:
    client_id = unique("cli-dup")
    args = ("client", "create", "--name", "Dup", "--type", "confidential", "--client-id", client_id)
    assert (await cli(*args)).code == 0
    again = await cli(*args)
    assert again.code != 0 and "exists" in again.err and "Traceback" not in again.err


async def test_rotate_secret_issues_a_new_secret_and_keeps_the_old_one_for_the_grace(
    cli_env: None, services: Services
) -> None:
    client_id = unique("cli-rot")
    created = await cli("client", "create", "--name", "Rot", "--type", "confidential", "--client-id", client_id, "--json")
    old = json.loads(created.out)["client_secret"]
    rotated = await cli("client", "rotate-secret", client_id, "--grace", "3600", "--json")
    assert rotated.code == 0, rotated.err
    body = json.loads(rotated.out)
    assert body["client_id"] == client_id and body["grace_seconds"] == 3600
    new = body["client_secret"]
    assert new != old
    services.clients.forget(client_id)
    stored = await services.clients.get(client_id)
    assert stored is not None
    now = services.clock.now()
    assert stored.check_secret(new, now) and stored.check_secret(old, now)

    immediate = await cli("client", "rotate-secret", client_id, "--grace", "0", "--json")
    newest = json.loads(immediate.out)["client_secret"]
    services.clients.forget(client_id)
    stored = await services.clients.get(client_id)
    assert stored is not None
    assert stored.check_secret(newest, services.clock.now())
    assert not stored.check_secret(new, services.clock.now())


async def test_rotate_secret_of_an_unknown_client_fails_cleanly(cli_env: None) -> None:
    result = await cli("client", "rotate-secret", unique("nobody"))
    assert result.code != 0 and "no such client" in result.err.lower() and "Traceback" not in result.err


async def test_user_create_reads_the_password_from_stdin(cli_env: None, services: Services) -> None:
    username = unique("cli-user")
    result = await cli(
        "user", "create", username, "--email", f"{username}@example.org", "--role", "premium_user",
        "--password-stdin", "--json", stdin=STRONG + "\n",
    )
    assert result.code == 0, result.err
    body = json.loads(result.out)
    assert body["username"] == username and body["roles"] == ["premium_user"]
    account = await services.accounts.get_by_username(username)
    assert account is not None and account.password_hash
    assert STRONG not in account.password_hash
    assert await services.passwords.verify(account.password_hash, STRONG)


async def test_user_create_refuses_a_short_password(cli_env: None, services: Services) -> None:
    username = unique("cli-short")
    result = await cli("user", "create", username, "--password-stdin", stdin="short-pw-11\n")
    assert result.code != 0
    assert "at least 12 characters" in result.err and "Traceback" not in result.err
    assert await services.accounts.get_by_username(username) is None


async def test_user_create_refuses_a_taken_username(cli_env: None) -> None:
    username = unique("cli-taken")
    assert (await cli("user", "create", username, "--password-stdin", stdin=STRONG)).code == 0
    again = await cli("user", "create", username, "--password-stdin", stdin=STRONG)
    assert again.code != 0 and "taken" in again.err and "Traceback" not in again.err


async def test_user_set_password(cli_env: None, services: Services) -> None:
    username = unique("cli-setpw")
    assert (await cli("user", "create", username, "--password-stdin", stdin=STRONG)).code == 0
    changed = await cli("user", "set-password", username, "--password-stdin", stdin="another long passphrase\n")
    assert changed.code == 0, changed.err
    assert "password changed" in changed.out
    account = await services.accounts.get_by_username(username)
    assert account is not None
    assert await services.passwords.verify(account.password_hash, "another long passphrase")
    assert not await services.passwords.verify(account.password_hash, STRONG)

    short = await cli("user", "set-password", username, "--password-stdin", stdin="tiny\n")
    assert short.code != 0 and "at least 12 characters" in short.err
    account = await services.accounts.get_by_username(username)
    assert account is not None and await services.passwords.verify(account.password_hash, "another long passphrase")

    missing = await cli("user", "set-password", unique("ghost"), "--password-stdin", stdin=STRONG)
    assert missing.code != 0 and "no such user" in missing.err.lower()


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for action in parser._actions:  # argparse has no public walk over sub-commands
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.extend(command_paths(sub, (*prefix, name)))
    return paths


COMMANDS = command_paths(build_parser())


def test_every_command_is_covered() -> None:
    assert {" ".join(p) for p in COMMANDS} >= {
        "", "serve", "migrate", "client", "client create", "client list", "client rotate-secret",
        "user", "user create", "user set-password",
    }


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "authserver")
def test_help(path: tuple[str, ...]) -> None:
    result = _run([*path, "--help"], "")
    assert result.code == 0
    assert result.out.startswith(f"usage: authserver {' '.join(path)}".rstrip())
    assert result.err == ""
