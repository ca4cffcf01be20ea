"""Client secret rotation without downtime: the new secret works at once on every instance, the old one
for the grace period (24 h by default), then stops. Two application instances share one database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from authserver.app import create_app
from authserver.clock import FrozenClock
from authserver.services import Services
from authserver.settings import load_settings
from tests.conftest import ISSUER, environ_for, fast_passwords
from tests.support.admin import admin_headers
from tests.support.factories import make_client


@pytest.fixture
async def two_instances(backend: str, database_url: str, tmp_root: Path) -> AsyncIterator[tuple[FrozenClock, list[httpx.AsyncClient], Services]]:
    clock = FrozenClock()
    settings = load_settings(environ_for(backend, database_url, tmp_root))
    async with AsyncExitStack() as stack:
        clients: list[httpx.AsyncClient] = []
        services: Services | None = None
        for _ in range(2):
            app = create_app(settings, clock=clock, passwords=fast_passwords())
            await stack.enter_async_context(LifespanManager(app))
            services = services or app.state.services
            clients.append(await stack.enter_async_context(httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)))
        assert services is not None
        yield clock, clients, services


async def token_status(http: httpx.AsyncClient, client_id: str, secret: str) -> int:
    response = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    return response.status_code


async def test_rotation_keeps_both_secrets_for_the_grace_period_on_every_instance(
    two_instances: tuple[FrozenClock, list[httpx.AsyncClient], Services],
) -> None:
    clock, (a, b), services = two_instances
    client = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"])
    old = client.secret
    assert old is not None
    # Instance B has the client (with only the old secret) in its cache.
    assert await token_status(b, client.client_id, old) == 200

    headers = await admin_headers(a, services)
    rotated = await a.post(f"/admin/api/clients/{client.client_id}/secrets", headers=headers)
    assert rotated.status_code == 201, rotated.text
    new = rotated.json()["client_secret"]
    assert rotated.json()["grace_seconds"] == 24 * 3600

    # Zero failed requests: the new secret works at once on both instances, and so does the old one.
    for http in (a, b):
        assert await token_status(http, client.client_id, new) == 200
        assert await token_status(http, client.client_id, old) == 200
    secrets = (await a.get(f"/admin/api/clients/{client.client_id}/secrets", headers=headers)).json()["items"]
    assert [s["valid"] for s in secrets] == [True, True]

    clock.advance(24 * 3600 - 1)
    assert await token_status(a, client.client_id, old) == 200
    clock.advance(2)
    headers = await admin_headers(a, services)  # the first admin token has expired meanwhile
    for http in (a, b):
        assert await token_status(http, client.client_id, old) == 401
        assert await token_status(http, client.client_id, new) == 200
    secrets = (await a.get(f"/admin/api/clients/{client.client_id}/secrets", headers=headers)).json()["items"]
    assert [s["valid"] for s in secrets] == [False, True]


async def test_rotation_with_no_grace_ends_the_old_secret_at_once(
    two_instances: tuple[FrozenClock, list[httpx.AsyncClient], Services],
) -> None:
    _clock, (a, b), services = two_instances
    client = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"])
    assert client.secret is not None
    headers = await admin_headers(a, services)
    bad = await a.post(f"/admin/api/clients/{client.client_id}/secrets", headers=headers, json={"grace_seconds": -1})
    assert bad.status_code == 400
    assert await token_status(a, client.client_id, client.secret) == 200
    rotated = await a.post(f"/admin/api/clients/{client.client_id}/secrets", headers=headers, json={"grace_seconds": 0})
    new = rotated.json()["client_secret"]
    assert await token_status(a, client.client_id, client.secret) == 401
    assert await token_status(a, client.client_id, new) == 200
    assert await token_status(b, client.client_id, new) == 200


async def test_several_rotations_overlap(two_instances: tuple[FrozenClock, list[httpx.AsyncClient], Services]) -> None:
    clock, (a, _), services = two_instances
    client = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"])
    headers = await admin_headers(a, services)
    second = (await a.post(f"/admin/api/clients/{client.client_id}/secrets", headers=headers, json={"grace_seconds": 3600})).json()
    clock.advance(600)
    third = (await a.post(f"/admin/api/clients/{client.client_id}/secrets", headers=headers, json={"grace_seconds": 3600})).json()
    assert client.secret is not None
    for secret in (client.secret, second["client_secret"], third["client_secret"]):
        assert await token_status(a, client.client_id, secret) == 200
    clock.advance(3000 + 1)  # the first secret's grace (from the first rotation) is over
    assert await token_status(a, client.client_id, client.secret) == 401
    assert await token_status(a, client.client_id, second["client_secret"]) == 200
