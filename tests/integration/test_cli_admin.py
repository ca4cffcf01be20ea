"""The admin commands of the CLI against the real database: client update/disable/enable/delete/rotate,
user list/set-roles, role list."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from authserver.cli import main
from authserver.services import Services
from tests.conftest import environ_for
from tests.support.factories import make_client, make_user


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, backend: str, database_url: str, tmp_root: Path) -> None:
    for key, value in environ_for(backend, database_url, tmp_root).items():
        monkeypatch.setenv(key, value)


async def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = await asyncio.to_thread(main, list(argv))
    assert code == 0
    return capsys.readouterr().out


async def test_client_commands(cli_env: None, services: Services, capsys: pytest.CaptureFixture[str]) -> None:
    client = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"])
    out = await run(capsys, "client", "update", client.client_id, "--scope", "read:levels", "--scope", "read:alerts", "--name", "Renamed", "--json")
    assert json.loads(out)["scopes"] == ["read:levels", "read:alerts"] and json.loads(out)["name"] == "Renamed"
    assert json.loads(await run(capsys, "client", "disable", client.client_id, "--json"))["disabled"] is True
    assert json.loads(await run(capsys, "client", "enable", client.client_id, "--json"))["disabled"] is False
    rotated = json.loads(await run(capsys, "client", "rotate-secret", client.client_id, "--grace", "60", "--json"))
    assert rotated["client_secret"].startswith("cs_") and rotated["grace_seconds"] == 60
    with pytest.raises(SystemExit):
        await asyncio.to_thread(main, ["client", "update", client.client_id, "--redirect-uri", "http://evil.example/cb"])
    with pytest.raises(SystemExit):
        await asyncio.to_thread(main, ["client", "delete", client.client_id])  # needs --yes
    await run(capsys, "client", "delete", client.client_id, "--yes")
    services.clients.forget(client.client_id)
    assert await services.clients.get(client.client_id) is None


async def test_user_and_role_commands(cli_env: None, services: Services, capsys: pytest.CaptureFixture[str]) -> None:
    person = await make_user(services)
    out = json.loads(await run(capsys, "user", "set-roles", person.username, "--role", "premium_user", "--json"))
    assert out["roles"] == ["premium_user"]
    account = await services.accounts.get(person.account_id)
    assert account is not None and account.roles == ["premium_user"]
    with pytest.raises(SystemExit):
        await asyncio.to_thread(main, ["user", "set-roles", person.username, "--role", "emperor"])
    listed = json.loads(await run(capsys, "user", "list", "--username", person.username, "--json"))
    assert [u["account_id"] for u in listed] == [person.account_id]
    assert json.loads(await run(capsys, "role", "list", "--json")) == ["free_user", "premium_user", "admin"]
