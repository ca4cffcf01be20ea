"""`authserver client secret list|add|revoke|reveal` and the owner contacts of `client update`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from authserver.services import Services
from tests.cli.test_cli import cli, cli_env  # noqa: F401 - the fixture
from tests.support.factories import unique


@pytest.mark.usefixtures("cli_env")
async def test_cli_lists_adds_and_revokes_named_secrets(services: Services) -> None:
    client_id = unique("cli-sec")
    created = await cli("client", "create", "--name", "S", "--type", "confidential", "--client-id", client_id, "--json")
    assert created.code == 0, created.err
    added = await cli("client", "secret", "add", client_id, "--label", "backup", "--json")
    assert added.code == 0, added.err
    body: dict[str, Any] = json.loads(added.out)
    assert body["label"] == "backup" and body["client_secret"].startswith("cs_")
    listed = await cli("client", "secret", "list", client_id, "--json")
    items = json.loads(listed.out)
    assert [i["label"] for i in items] == ["default", "backup"] and all(i["valid"] for i in items)
    assert all("client_secret" not in i for i in items)
    assert all(i["use_count"] == 0 and i["last_used_at"] is None and i["expires_at"] for i in items)
    revoked = await cli("client", "secret", "revoke", client_id, str(items[1]["id"]), "--json")
    assert revoked.code == 0 and json.loads(revoked.out)["revoked_at"]
    services.clients.forget(client_id)
    stored = await services.clients.get(client_id)
    assert stored is not None and not stored.check_secret(body["client_secret"], services.clock.now())
    missing = await cli("client", "secret", "reveal", client_id, str(items[0]["id"]))
    assert missing.code != 0 and "Traceback" not in missing.err
    contacts = await cli("client", "update", client_id, "--owner-email", "ops@cmipro.example",
                         "--notification-webhook", "https://hooks.example/r", "--json")
    assert contacts.code == 0, contacts.err
    assert json.loads(contacts.out)["notification_webhook_secret"].startswith("whsec_")
    bad = await cli("client", "update", client_id, "--notification-webhook", "http://hooks.example/r")
    assert bad.code != 0 and "notification_webhook" in bad.err
