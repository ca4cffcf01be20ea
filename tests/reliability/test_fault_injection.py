"""Fault injection for staging rehearsals (issue 8): off by default, refused in production, real 503 paths."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from authserver.app import create_app
from authserver.chaos import FaultyCache, inject_database_faults
from authserver.services import Services
from authserver.settings import SettingsError, load_settings
from tests.conftest import ISSUER, environ_for, fast_passwords
from tests.support.apps import production_env
from tests.support.factories import REDIRECT_URI, make_client, pkce_pair


def test_fault_injection_is_refused_in_production() -> None:
    env = production_env()
    assert load_settings(env).chaos.enabled is False
    with pytest.raises(SettingsError, match="chaos"):
        load_settings(env | {"AUTHSERVER_CHAOS__DATABASE_ERROR_RATE": "0.05"})
    with pytest.raises(SettingsError, match="chaos.cache_error_rate"):
        load_settings({"AUTHSERVER_CHAOS__CACHE_ERROR_RATE": "2"})


async def test_cache_faults_fail_sign_in_closed_and_keep_machine_tokens(
    backend: str, database_url: str, tmp_root: Path
) -> None:
    settings = load_settings(environ_for(backend, database_url, tmp_root, AUTHSERVER_CHAOS__CACHE_ERROR_RATE="1"))
    app = create_app(settings, passwords=fast_passwords())
    async with LifespanManager(app):
        services: Services = app.state.services
        assert isinstance(services.cache, FaultyCache)
        client = await make_client(services)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
            token = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))
            assert token.status_code == 200
            _, challenge = pkce_pair()
            page = await http.get("/authorize", params={
                "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT_URI, "scope": "openid",
                "code_challenge": challenge, "code_challenge_method": "S256",
            })
            assert page.status_code == 503 and "location" not in page.headers
            assert page.headers["retry-after"]


async def test_introspection_under_cache_latency_answers(backend: str, database_url: str, tmp_root: Path) -> None:
    """Issue 16: FaultyCache lacked get_many, so chaos mode turned every introspection into a 500."""
    settings = load_settings(environ_for(backend, database_url, tmp_root, AUTHSERVER_CHAOS__CACHE_LATENCY_MS="1"))
    app = create_app(settings, passwords=fast_passwords())
    async with LifespanManager(app):
        services: Services = app.state.services
        assert isinstance(services.cache, FaultyCache)
        client = await make_client(services, can_introspect=True)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
            auth = (client.client_id, client.secret or "")
            token = await http.post("/token", data={"grant_type": "client_credentials"}, auth=auth)
            assert token.status_code == 200, token.text
            body = await http.post("/introspect", data={"token": token.json()["access_token"]}, auth=auth)
            assert body.status_code == 200 and body.json()["active"] is True, body.text


async def test_database_faults_answer_503_and_never_issue(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    inject_database_faults(services.engine, latency_ms=1, error_rate=1.0, rng=random.Random(7))
    response = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert "access_token" not in response.text
    assert (await http.get("/jwks")).status_code == 200
