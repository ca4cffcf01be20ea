"""RFC 7591 dynamic client registration behind an initial access token (configured or CLI-issued)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from authserver.admin.registration import issue_initial_access_token
from authserver.app import create_app
from authserver.services import Services
from authserver.settings import load_settings
from tests.conftest import ISSUER, environ_for, fast_passwords
from tests.support.admin import admin_headers

CONFIGURED = "initial-access-token-for-tests-0123456789"


@pytest.fixture
async def reg(backend: str, database_url: str, tmp_root: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    settings = load_settings(environ_for(backend, database_url, tmp_root, AUTHSERVER_ADMIN__REGISTRATION_TOKENS=CONFIGURED))
    app = create_app(settings, passwords=fast_passwords())
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        yield http, app.state.services


async def test_registration_needs_an_initial_access_token(reg: tuple[httpx.AsyncClient, Services]) -> None:
    http, services = reg
    body = {"redirect_uris": ["https://app.example/cb"], "client_name": "App"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, await admin_headers(http, services)):
        response = await http.post("/register", json=body, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"] == "invalid_token"


async def test_confidential_client_registers_and_gets_tokens(reg: tuple[httpx.AsyncClient, Services]) -> None:
    http, services = reg
    response = await http.post(
        "/register",
        headers={"Authorization": f"Bearer {CONFIGURED}"},
        json={"client_name": "Flood sensors", "grant_types": ["client_credentials"], "scope": "read:levels read:alerts", "logo_uri": "https://x.example/l.png"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["client_secret"] and body["client_id_issued_at"] > 0
    # RFC 7591 §3.2.1: the secret's expiry, client_secrets.lifetime (90 days) after issue.
    lifetime = 90 * 24 * 3600  # (the secret is made a moment before client_id_issued_at is read)
    assert body["client_id_issued_at"] - 1 + lifetime <= body["client_secret_expires_at"] <= body["client_id_issued_at"] + lifetime
    assert body["scope"] == "read:levels read:alerts" and body["response_types"] == []
    token = await http.post("/token", data={"grant_type": "client_credentials", "scope": "read:levels"}, auth=(body["client_id"], body["client_secret"]))
    assert token.status_code == 200, token.text
    stored = await services.clients.get(body["client_id"])
    assert stored is not None and stored.first_party is False


async def test_public_client_with_cli_issued_token(reg: tuple[httpx.AsyncClient, Services]) -> None:
    http, services = reg
    token = issue_initial_access_token(services, ttl=600)
    response = await http.post(
        "/register",
        headers={"Authorization": f"Bearer {token}"},
        json={"redirect_uris": ["http://127.0.0.1/callback"], "token_endpoint_auth_method": "none",
              "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert "client_secret" not in body and body["token_endpoint_auth_method"] == "none"
    assert "admin" not in body["scope"].split()


async def test_repeated_scopes_are_registered_once_in_order(reg: tuple[httpx.AsyncClient, Services]) -> None:
    http, _ = reg
    response = await http.post(
        "/register", headers={"Authorization": f"Bearer {CONFIGURED}"},
        json={"redirect_uris": ["com.example.app:/cb"], "token_endpoint_auth_method": "none", "scope": "read:levels openid  read:levels"},
    )
    assert response.status_code == 201, response.text
    assert response.json()["scope"] == "read:levels openid"


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({"redirect_uris": ["http://evil.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://a.example/cb#x"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://*.a.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://user@a.example/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["myapp:/cb"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://a.example/cb"], "scope": "openid\tprofile"}, "invalid_client_metadata"),
        ({"redirect_uris": ["https://a.example/cb"], "scope": "openid profile\n"}, "invalid_client_metadata"),
        ({"grant_types": ["authorization_code"]}, "invalid_redirect_uri"),
        ({"redirect_uris": ["https://a.example/cb"], "scope": "openid admin"}, "invalid_client_metadata"),
        ({"grant_types": ["implicit"]}, "invalid_client_metadata"),
        ({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}, "invalid_client_metadata"),
        ({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}, "invalid_client_metadata"),
        ({"redirect_uris": "https://a.example/cb"}, "invalid_client_metadata"),
        # Issue 16: a NUL reached PostgreSQL and came back as a 503 outage.
        ({"redirect_uris": ["https://a.example/cb"], "client_name": "App\x00"}, "invalid_client_metadata"),
        ({"redirect_uris": ["https://a.example/cb"], "client_name": "App\nX-Evil: 1"}, "invalid_client_metadata"),
    ],
)
async def test_bad_metadata_is_refused(reg: tuple[httpx.AsyncClient, Services], metadata: dict[str, object], error: str) -> None:
    http, services = reg
    before = len(await services.clients.list())
    response = await http.post("/register", headers={"Authorization": f"Bearer {CONFIGURED}"}, json=metadata)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert len(await services.clients.list()) == before


async def test_discovery_advertises_the_registration_endpoint(http: httpx.AsyncClient) -> None:
    metadata = (await http.get("/.well-known/openid-configuration")).json()
    assert metadata["registration_endpoint"] == f"{ISSUER}/register"


async def test_a_secret_that_never_expires_is_announced_as_zero(backend: str, database_url: str, tmp_root: Path) -> None:
    settings = load_settings(environ_for(
        backend, database_url, tmp_root, AUTHSERVER_ADMIN__REGISTRATION_TOKENS=CONFIGURED, AUTHSERVER_CLIENT_SECRETS__LIFETIME="0",
    ))
    app = create_app(settings, passwords=fast_passwords())
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        response = await http.post(
            "/register", headers={"Authorization": f"Bearer {CONFIGURED}"},
            json={"client_name": "Forever", "grant_types": ["client_credentials"], "scope": "read:levels"},
        )
        assert response.status_code == 201, response.text
        assert response.json()["client_secret_expires_at"] == 0
