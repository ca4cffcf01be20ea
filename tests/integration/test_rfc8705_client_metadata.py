"""RFC 8705 client metadata through the admin API, RFC 7591 registration and the CLI: accepted, validated
(exactly one tls_client_auth name; a key for self_signed_tls_client_auth), shown in responses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from joserfc.jwk import ECKey

from authserver.app import create_app
from authserver.cli import main
from authserver.services import Services
from authserver.settings import load_settings
from tests.conftest import ISSUER, environ_for, fast_passwords
from tests.support.admin import admin_headers
from tests.support.factories import unique

API = "/admin/api"
TOKEN = "initial-access-token-for-mtls-tests-0123456789"
JWK = {**ECKey.generate_key("P-256").as_dict(private=False), "kid": "gauges-cert"}  # jwks_problem: every key has a kid


async def test_admin_api_creates_shows_and_validates_mtls_clients(http: httpx.AsyncClient, services: Services) -> None:
    headers = await admin_headers(http, services)
    base = {"name": "Gauges", "client_type": "confidential", "grant_types": ["client_credentials"], "scopes": ["read:levels"]}
    created = await http.post(f"{API}/clients", headers=headers, json={
        **base, "client_id": unique("gauges"), "token_endpoint_auth_method": "tls_client_auth",
        "tls_client_auth_san_dns": "gauges.cmipro.example", "tls_client_certificate_bound_access_tokens": True,
    })
    assert created.status_code == 201, created.text
    body = created.json()
    assert "client_secret" not in body
    assert body["token_endpoint_auth_method"] == "tls_client_auth"
    assert body["tls_client_auth_san_dns"] == "gauges.cmipro.example" and body["tls_client_certificate_bound_access_tokens"] is True
    # Switching to the subject DN needs the SAN cleared: exactly one name.
    client_id = body["client_id"]
    both = await http.patch(f"{API}/clients/{client_id}", headers=headers, json={"tls_client_auth_subject_dn": "CN=gauges,O=CMIPRO"})
    assert both.status_code == 400
    switched = await http.patch(f"{API}/clients/{client_id}", headers=headers,
                                json={"tls_client_auth_subject_dn": "CN=gauges,O=CMIPRO", "tls_client_auth_san_dns": None})
    assert switched.status_code == 200, switched.text
    assert switched.json()["tls_client_auth_subject_dn"] == "CN=gauges,O=CMIPRO" and switched.json()["tls_client_auth_san_dns"] is None

    refused = [
        {"token_endpoint_auth_method": "tls_client_auth"},  # no name
        {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "not a DN"},
        {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_ip": "999.1.1.1"},
        {"token_endpoint_auth_method": "client_secret_basic", "tls_client_auth_san_dns": "a.example"},
        {"token_endpoint_auth_method": "self_signed_tls_client_auth"},  # no jwks
        {"token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": {"keys": [{**JWK, "d": "private"}]}},
        {"token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": "keys"},
        {"tls_client_certificate_bound_access_tokens": "yes"},
        {"tls_client_auth_san_email": "a\x00@b"},
    ]
    for extra in refused:
        response = await http.post(f"{API}/clients", headers=headers, json={**base, **extra})
        assert response.status_code == 400, (extra, response.text)
    self_signed = await http.post(f"{API}/clients", headers=headers, json={
        **base, "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": {"keys": [JWK]},
    })
    assert self_signed.status_code == 201, self_signed.text
    assert self_signed.json()["jwks"] == {"keys": [JWK]}


@pytest.fixture
async def reg(backend: str, database_url: str, tmp_root: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(environ_for(
        backend, database_url, tmp_root, AUTHSERVER_ADMIN__REGISTRATION_TOKENS=TOKEN,
        AUTHSERVER_SECURITY__TRUSTED_PROXIES="10.1.2.3", AUTHSERVER_SECURITY__CLIENT_CERTIFICATE_HEADER="X-SSL-Client-Cert",
    ))
    app = create_app(settings, passwords=fast_passwords())
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        yield http


async def test_registration_accepts_mtls_metadata(reg: httpx.AsyncClient) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    base = {"client_name": "Gauges", "grant_types": ["client_credentials"], "scope": "read:levels"}
    response = await reg.post("/register", headers=headers, json={
        **base, "token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=gauges,O=CMIPRO,C=HN",
        "tls_client_certificate_bound_access_tokens": True,
    })
    assert response.status_code == 201, response.text
    body = response.json()
    assert "client_secret" not in body and body["token_endpoint_auth_method"] == "tls_client_auth"
    assert body["tls_client_auth_subject_dn"] == "CN=gauges,O=CMIPRO,C=HN" and body["tls_client_certificate_bound_access_tokens"] is True
    for extra in (
        {"token_endpoint_auth_method": "tls_client_auth"},
        {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_dns": "a.example", "tls_client_auth_san_ip": "192.0.2.1"},
        {"token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": {"keys": []}},
        {"tls_client_certificate_bound_access_tokens": 1},
        {"tls_client_auth_subject_dn": ["CN=a"]},
    ):
        refused = await reg.post("/register", headers=headers, json={**base, **extra})
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_client_metadata", (extra, refused.text)
    self_signed = await reg.post("/register", headers=headers, json={
        **base, "token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": {"keys": [JWK]},
    })
    assert self_signed.status_code == 201 and self_signed.json()["jwks"] == {"keys": [JWK]}


async def test_registration_refuses_mtls_methods_when_mtls_is_off(backend: str, database_url: str, tmp_root: Path) -> None:
    settings = load_settings(environ_for(backend, database_url, tmp_root, AUTHSERVER_ADMIN__REGISTRATION_TOKENS=TOKEN))
    app = create_app(settings, passwords=fast_passwords())
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        response = await http.post("/register", headers={"Authorization": f"Bearer {TOKEN}"}, json={
            "client_name": "G", "grant_types": ["client_credentials"], "token_endpoint_auth_method": "tls_client_auth",
            "tls_client_auth_subject_dn": "CN=g",
        })
    assert response.status_code == 400 and response.json()["error"] == "invalid_client_metadata"


async def test_cli_creates_mtls_clients(monkeypatch: pytest.MonkeyPatch, backend: str, database_url: str, tmp_root: Path,
                                        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in environ_for(backend, database_url, tmp_root).items():
        monkeypatch.setenv(key, value)
    common = ["client", "create", "--name", "Gauges", "--type", "confidential", "--grant", "client_credentials", "--json"]
    assert await asyncio.to_thread(main, [*common, "--auth-method", "tls_client_auth", "--tls-san-uri", "spiffe://cmipro/gauges",
                                          "--certificate-bound-tokens"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tls_client_auth_san_uri"] == "spiffe://cmipro/gauges" and "client_secret" not in out
    assert out["tls_client_certificate_bound_access_tokens"] is True
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [JWK]}))
    assert await asyncio.to_thread(main, [*common, "--auth-method", "self_signed_tls_client_auth", "--jwks-file", str(jwks)]) == 0
    assert json.loads(capsys.readouterr().out)["jwks"] == {"keys": [JWK]}
    for bad in (["--auth-method", "tls_client_auth"], ["--auth-method", "self_signed_tls_client_auth"],
                ["--auth-method", "tls_client_auth", "--tls-subject-dn", "CN=a", "--tls-san-dns", "a.example"]):
        with pytest.raises(SystemExit):
            await asyncio.to_thread(main, [*common, *bad])
