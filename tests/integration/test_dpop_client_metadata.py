"""``dpop_bound_access_tokens`` (RFC 9449 §5.2) through the admin API, dynamic registration and the CLI."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from authserver.admin.models import schemas
from authserver.admin.registration import issue_initial_access_token
from authserver.app import create_app
from authserver.cli import main
from authserver.services import Services
from authserver.settings import load_settings
from tests.conftest import ISSUER, environ_for, fast_passwords
from tests.support.admin import admin_headers
from tests.support.factories import make_client, unique

API = "/admin/api"


async def test_admin_api_sets_and_clears_the_flag(http: httpx.AsyncClient, services: Services) -> None:
    headers = await admin_headers(http, services)
    client_id = unique("dpop")
    created = await http.post(f"{API}/clients", headers=headers, json={
        "client_id": client_id, "name": "SPA", "client_type": "public", "grant_types": ["authorization_code"],
        "redirect_uris": ["https://spa.example/cb"], "dpop_bound_access_tokens": True,
    })
    assert created.status_code == 201, created.text
    assert created.json()["dpop_bound_access_tokens"] is True
    assert (stored := await services.clients.refresh(client_id)) is not None and stored.dpop_bound_access_tokens
    for value, status in ((False, 200), (None, 400), ("yes", 400)):
        changed = await http.patch(f"{API}/clients/{client_id}", headers=headers, json={"dpop_bound_access_tokens": value})
        assert changed.status_code == status, (value, changed.text)
    assert (stored := await services.clients.refresh(client_id)) is not None and not stored.dpop_bound_access_tokens
    assert schemas()["ClientUpdate"]["properties"]["dpop_bound_access_tokens"]["type"] == "boolean"


@pytest.mark.parametrize("value", [True, "true", 1])
async def test_registration_accepts_a_boolean_only(backend: str, database_url: str, tmp_root: Path, value: object) -> None:
    app = create_app(load_settings(environ_for(backend, database_url, tmp_root)), passwords=fast_passwords())
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        token = issue_initial_access_token(app.state.services, ttl=600)
        response = await http.post("/register", headers={"Authorization": f"Bearer {token}"}, json={
            "redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"], "dpop_bound_access_tokens": value,
        })
    if value is True:
        assert response.status_code == 201, response.text
        assert response.json()["dpop_bound_access_tokens"] is True
    else:
        assert response.status_code == 400 and response.json()["error"] == "invalid_client_metadata"


async def test_cli_create_and_update(
    monkeypatch: pytest.MonkeyPatch, backend: str, database_url: str, tmp_root: Path, services: Services,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key, value in environ_for(backend, database_url, tmp_root).items():
        monkeypatch.setenv(key, value)
    client_id = unique("cli-dpop")
    code = await asyncio.to_thread(main, [
        "client", "create", "--name", "Mapa", "--type", "public", "--client-id", client_id, "--grant", "authorization_code",
        "--redirect-uri", "https://mapa.cmipro.example/callback", "--scope", "openid", "--dpop-bound-access-tokens", "--json",
    ])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["dpop_bound_access_tokens"] is True
    other = await make_client(services)
    code = await asyncio.to_thread(main, ["client", "update", other.client_id, "--dpop-bound-access-tokens", "yes", "--json"])
    assert code == 0
    assert (stored := await services.clients.refresh(other.client_id)) is not None and stored.dpop_bound_access_tokens
