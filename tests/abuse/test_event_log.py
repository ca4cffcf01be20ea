"""The security log records token issuance and refresh-token reuse (RFC 9700 §4.14.2), without the tokens."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from authserver.services import Services
from authserver.settings import Settings
from tests.support.factories import authorize, make_client, make_user, redeem
from tests.support.lifecycle import strict_settings


@pytest.fixture
def settings(backend: str, database_url: str, tmp_root: Path) -> Settings:
    return strict_settings(backend, database_url, tmp_root)  # an immediate second refresh is reuse


async def test_token_issued_and_refresh_reuse_are_logged(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    person = await make_user(services)
    params, verifier = await authorize(http, client, person)
    tokens = (await redeem(http, client, params["code"], verifier)).json()
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    auth = (client.client_id, client.secret or "")
    assert (await http.post("/token", data=refresh, auth=auth)).status_code == 200
    assert (await http.post("/token", data=refresh, auth=auth)).status_code == 400
    events = await services.events.query(client_id=client.client_id)
    kinds = [(e["event"], e["outcome"]) for e in events]
    assert kinds.count(("token", "issued")) == 2
    assert ("refresh_token_reuse", "failure") in kinds
    issued = next(e for e in events if e["event"] == "token")
    assert issued["details"]["grant_type"] in ("authorization_code", "refresh_token")
    dumped = json.dumps(events)
    assert tokens["refresh_token"] not in dumped and tokens["access_token"] not in dumped and params["code"] not in dumped


def test_security_events_go_to_stdout_as_json(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    script = (
        "import asyncio, logging\n"
        "from authserver.events import configure_security_log, log\n"
        "configure_security_log()\n"
        "log.info('{\"event\": \"probe\"}')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert json.loads(out.stdout.strip()) == {"event": "probe"}
