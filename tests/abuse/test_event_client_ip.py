"""Security events of code reuse, refresh-token reuse, revocation and registration carry the client's IP,
as ``endpoints._guard.client_ip`` resolves it: X-Forwarded-For only through a trusted proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from authserver.services import Services
from tests.support.apps import running_app
from tests.support.factories import authorize, make_client, make_user, redeem
from tests.support.lifecycle import STRICT_ROTATION

CALLER = "203.0.113.7"
FORWARDED = {"X-Forwarded-For": CALLER}
INITIAL_TOKEN = "initial-access-token-for-event-tests-0123456789"


@pytest.fixture
async def behind_proxy(database_url: str, tmp_root: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    async with running_app(
        database_url, tmp_root,
        AUTHSERVER_SECURITY__TRUSTED_PROXIES='["127.0.0.1"]', AUTHSERVER_ADMIN__REGISTRATION_TOKENS=INITIAL_TOKEN,
        **STRICT_ROTATION,  # an immediate second refresh is reuse
    ) as (_, services, http):
        yield http, services


async def _events(services: Services, event: str, client_id: str | None = None) -> list[dict[str, object]]:
    return await services.events.query(event=event, client_id=client_id)


async def test_code_reuse_and_refresh_reuse_events_carry_the_client_ip(behind_proxy: tuple[httpx.AsyncClient, Services]) -> None:
    http, services = behind_proxy
    client = await make_client(services)
    params, verifier = await authorize(http, client, await make_user(services))
    http.headers.update(FORWARDED)
    tokens = (await redeem(http, client, params["code"], verifier)).json()
    assert (await redeem(http, client, params["code"], verifier)).status_code == 400
    [reuse] = await _events(services, "code_reuse", client.client_id)
    assert reuse["ip"] == CALLER

    client = await make_client(services)
    http.headers.pop("X-Forwarded-For")
    params, verifier = await authorize(http, client, await make_user(services))
    http.headers.update(FORWARDED)
    tokens = (await redeem(http, client, params["code"], verifier)).json()
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
    auth = (client.client_id, str(client.secret))
    assert (await http.post("/token", data=refresh, auth=auth)).status_code == 200
    assert (await http.post("/token", data=refresh, auth=auth)).status_code == 400
    [reuse] = await _events(services, "refresh_token_reuse", client.client_id)
    assert reuse["ip"] == CALLER


async def test_revocation_events_carry_the_client_ip(behind_proxy: tuple[httpx.AsyncClient, Services]) -> None:
    http, services = behind_proxy
    client = await make_client(services)
    params, verifier = await authorize(http, client, await make_user(services))
    tokens = (await redeem(http, client, params["code"], verifier)).json()
    auth = (client.client_id, str(client.secret))
    for token in (tokens["access_token"], tokens["refresh_token"]):
        assert (await http.post("/revoke", data={"token": token}, auth=auth, headers=FORWARDED)).status_code == 200
    revoked = await _events(services, "token_revoked", client.client_id)
    assert sorted(str(e["details"]["token_type"]) for e in revoked) == ["access_token", "refresh_token"]  # type: ignore[index]
    assert {e["ip"] for e in revoked} == {CALLER}


async def test_registration_events_carry_the_client_ip(behind_proxy: tuple[httpx.AsyncClient, Services]) -> None:
    http, services = behind_proxy
    refused = await http.post("/register", json={"grant_types": ["client_credentials"]}, headers={**FORWARDED, "Authorization": "Bearer wrong"})
    assert refused.status_code == 401
    created = await http.post(
        "/register", json={"grant_types": ["client_credentials"], "scope": "read:levels"},
        headers={**FORWARDED, "Authorization": f"Bearer {INITIAL_TOKEN}"},
    )
    assert created.status_code == 201, created.text
    [success] = await _events(services, "client_registered", created.json()["client_id"])
    assert success["ip"] == CALLER
    failures = await services.events.query(event="client_registered", outcome="failure", ip=CALLER)
    assert failures and all(e["ip"] == CALLER for e in failures)
