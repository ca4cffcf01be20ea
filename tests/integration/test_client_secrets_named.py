"""Named client secrets with their own expiry, revocation and usage statistics, through the admin API
(behind the bearer gate) and the CLI; usage counted in memory per instance and added up by each flush."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from authserver.app import create_app
from authserver.clock import FrozenClock
from authserver.services import Services
from authserver.settings import load_settings
from tests.conftest import ISSUER, environ_for, fast_passwords
from tests.support.admin import admin_headers, client_token, make_admin_client
from tests.support.factories import make_client

DAY = 24 * 3600
Instances = tuple[FrozenClock, list[httpx.AsyncClient], list[Services]]


@pytest.fixture
async def two(backend: str, database_url: str, tmp_root: Path) -> AsyncIterator[Instances]:
    clock = FrozenClock()
    settings = load_settings(environ_for(backend, database_url, tmp_root))
    async with AsyncExitStack() as stack:
        clients: list[httpx.AsyncClient] = []
        services: list[Services] = []
        for _ in range(2):
            app = create_app(settings, clock=clock, passwords=fast_passwords())
            await stack.enter_async_context(LifespanManager(app))
            services.append(app.state.services)
            clients.append(await stack.enter_async_context(httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)))
        yield clock, clients, services


async def token_status(http: httpx.AsyncClient, client_id: str, secret: str) -> int:
    response = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    return response.status_code


def secrets_url(client_id: str) -> str:
    return f"/admin/api/clients/{client_id}/secrets"


async def test_named_secrets_live_side_by_side_and_rotate_by_label(two: Instances) -> None:
    clock, (a, b), (services, _) = two
    client = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"])
    assert client.secret is not None
    headers = await admin_headers(a, services)
    ci = await a.post(secrets_url(client.client_id), headers=headers, json={"label": "ci"})
    assert ci.status_code == 201, ci.text
    assert ci.json()["label"] == "ci"
    ci_secret = ci.json()["client_secret"]
    for http in (a, b):
        assert await token_status(http, client.client_id, client.secret) == 200
        assert await token_status(http, client.client_id, ci_secret) == 200

    # Rotating the label "ci" leaves the default secret alone.
    ci2 = await a.post(secrets_url(client.client_id), headers=headers, json={"label": "ci", "grace_seconds": 0})
    ci2_secret = ci2.json()["client_secret"]
    assert await token_status(a, client.client_id, ci_secret) == 401
    assert await token_status(a, client.client_id, ci2_secret) == 200
    assert await token_status(a, client.client_id, client.secret) == 200

    items = (await a.get(secrets_url(client.client_id), headers=headers)).json()["items"]
    assert [(i["label"], i["valid"]) for i in items] == [("default", True), ("ci", False), ("ci", True)]
    assert items[1]["rotated_at"] is not None and items[0]["rotated_at"] is None
    created = datetime.fromisoformat(items[0]["created_at"])
    assert datetime.fromisoformat(items[0]["expires_at"]) == created + timedelta(days=90)

    # The client's record announces when its last valid secret ends (RFC 7591 §3.2.1 semantics).
    clock.advance(DAY)
    headers = await admin_headers(a, services)
    ci3 = await a.post(secrets_url(client.client_id), headers=headers, json={"label": "ci"})
    assert ci3.status_code == 201
    view = (await a.get(f"/admin/api/clients/{client.client_id}", headers=headers)).json()
    assert view["client_secret_expires_at"] == int((clock.now() + timedelta(days=90)).timestamp())


async def test_a_revoked_secret_stops_here_at_once_and_everywhere_within_the_client_cache(two: Instances) -> None:
    clock, (a, b), (services, _) = two
    client = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"])
    assert client.secret is not None
    headers = await admin_headers(a, services)
    spare = (await a.post(secrets_url(client.client_id), headers=headers, json={"label": "spare"})).json()
    assert await token_status(b, client.client_id, client.secret) == 200  # b caches the client
    first_id = (await a.get(secrets_url(client.client_id), headers=headers)).json()["items"][0]["id"]
    revoked = await a.delete(f"{secrets_url(client.client_id)}/{first_id}", headers=headers)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None and not revoked.json()["valid"]
    assert await token_status(a, client.client_id, client.secret) == 401
    clock.advance(11)  # the other instance's 10-second client cache
    assert await token_status(b, client.client_id, client.secret) == 401
    assert await token_status(b, client.client_id, spare["client_secret"]) == 200
    again = await a.delete(f"{secrets_url(client.client_id)}/{first_id}", headers=await admin_headers(a, services))
    assert again.status_code == 200  # revoking twice changes nothing
    events = await services.events.query(client_id=client.client_id, event="admin.client_secret_revoked")
    assert len(events) == 2


async def test_secret_requests_refused_cleanly(two: Instances) -> None:
    _clock, (a, _b), (services, _) = two
    admin = await make_admin_client(services)
    headers = {"Authorization": f"Bearer {await client_token(a, admin)}"}
    client = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"])
    other = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"])
    other_id = (await a.get(secrets_url(other.client_id), headers=headers)).json()["items"][0]["id"]
    base = secrets_url(client.client_id)
    for body in ({"label": "a b"}, {"label": ""}, {"label": "x" * 65}, {"label": 7}, {"label": "ok", "extra": 1}):
        response = await a.post(base, headers=headers, json=body)
        assert response.status_code == 400, body
    for path in (f"{base}/abc", f"{base}/-1", f"{base}/99999999999", f"{base}/{other_id}", f"{base}/{'9' * 40}"):
        assert (await a.delete(path, headers=headers)).status_code == 404, path
        assert (await a.post(f"{path}/reveal", headers=headers)).status_code == 404, path
    mine = (await a.get(base, headers=headers)).json()["items"][0]["id"]
    assert (await a.post(f"{base}/{mine}/reveal", headers=headers)).status_code == 404  # nothing pending
    own_id = (await a.get(secrets_url(admin.client_id), headers=headers)).json()["items"][0]["id"]
    assert (await a.delete(f"{secrets_url(admin.client_id)}/{own_id}", headers=headers)).status_code == 409
    assert (await a.delete(f"{base}/{mine}")).status_code == 401  # behind the bearer gate
    assert (await a.post(f"{base}/{mine}/reveal")).status_code == 401
    # The other client's secret was not touched by any of it.
    assert other.secret is not None and await token_status(a, other.client_id, other.secret) == 200


async def test_owner_contacts_are_validated_and_setting_a_webhook_shows_its_key_once(two: Instances) -> None:
    _clock, (a, _b), (services, _) = two
    headers = await admin_headers(a, services)
    client = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"])
    url = f"/admin/api/clients/{client.client_id}"
    for body in (
        {"notification_webhook": "http://hooks.example/x"},  # plain http off loopback
        {"notification_webhook": "https://user:pw@hooks.example/x"},
        {"notification_webhook": "https://hooks.example/x#frag"},
        {"notification_webhook": "ftp://hooks.example/x"},
        {"notification_webhook": "https://hooks.example:99999/x"},
        {"notification_webhook": "https://"},
        {"owner_email": "not-an-address"},
        {"owner_email": "a@b.example\r\nBcc: x@y.example"},
    ):
        response = await a.patch(url, headers=headers, json=body)
        assert response.status_code == 400, (body, response.text)
    assert (await a.get(url, headers=headers)).json()["notification_webhook"] is None
    done = await a.patch(url, headers=headers, json={"notification_webhook": "https://hooks.example/rotate", "owner_email": "ops@cmipro.example"})
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["notification_webhook"] == "https://hooks.example/rotate" and body["owner_email"] == "ops@cmipro.example"
    assert body["notification_webhook_secret"].startswith("whsec_")
    read = (await a.get(url, headers=headers)).json()
    assert "notification_webhook_secret" not in read
    cleared = await a.patch(url, headers=headers, json={"notification_webhook": None})
    assert cleared.json()["notification_webhook"] is None and "notification_webhook_secret" not in cleared.json()
    public = await a.post("/admin/api/clients", headers=headers, json={
        "name": "Web", "client_type": "public", "grant_types": ["authorization_code"],
        "redirect_uris": ["https://app.example/cb"], "notification_webhook": "https://hooks.example/x",
    })
    assert public.status_code == 400


async def test_usage_is_counted_in_memory_and_each_instance_adds_its_share(two: Instances) -> None:
    clock, (a, b), (one, two_) = two
    client = await make_client(one, grant_types=["client_credentials"], scopes=["read:levels"])
    assert client.secret is not None
    for _ in range(3):
        assert await token_status(a, client.client_id, client.secret) == 200
    clock.advance(5)
    for _ in range(2):
        assert await token_status(b, client.client_id, client.secret) == 200
    assert await token_status(b, client.client_id, "cs_wrong") == 401  # a refusal is not a use
    secret_id = client.info.secrets[0].id
    assert one.clients.usage.pending == {secret_id: 3} and two_.clients.usage.pending == {secret_id: 2}
    rows = await one.clients.secrets(client.client_id)  # reading flushes this instance only
    assert rows[0].use_count == 3
    # Both instances flush at once: the counts add up, and the later use wins last_used_at.
    clock.advance(5)
    for _ in range(4):
        assert await token_status(a, client.client_id, client.secret) == 200
    assert all(await asyncio.gather(one.clients.usage.flush(), two_.clients.usage.flush()))
    headers = await admin_headers(a, one)
    items = (await a.get(secrets_url(client.client_id), headers=headers)).json()["items"]
    assert items[0]["use_count"] == 9
    assert datetime.fromisoformat(items[0]["last_used_at"]) == clock.now()
    assert secret_id not in one.clients.usage.pending  # the admin client's own use may be pending


def test_settings_for_secret_lifetimes_are_checked(tmp_root: Path) -> None:
    from authserver.settings import SettingsError

    base = environ_for("sqlite", f"sqlite+aiosqlite:///{tmp_root / 'x.db'}", tmp_root)
    for extra in (
        {"AUTHSERVER_CLIENT_SECRETS__LIFETIME": "-1"},
        {"AUTHSERVER_CLIENT_SECRETS__ROTATE_BEFORE": str(91 * DAY)},
        {"AUTHSERVER_CLIENT_SECRETS__ROTATE_BEFORE": "0"},
        {"AUTHSERVER_CLIENT_SECRETS__WEBHOOK_ATTEMPTS": "0"},
        {"AUTHSERVER_CLIENT_SECRETS__USAGE_FLUSH_INTERVAL": "0"},
    ):
        with pytest.raises(SettingsError, match="client_secrets"):
            load_settings({**base, **extra})
    assert load_settings({**base, "AUTHSERVER_CLIENT_SECRETS__LIFETIME": "0"}).client_secrets.lifetime == 0


async def test_a_failed_usage_flush_keeps_the_counts_for_the_next_one(own_database: str, tmp_root: Path) -> None:
    from authserver.chaos import Experiment
    from tests.support.apps import running_app

    clock = FrozenClock()
    async with running_app(own_database, tmp_root, clock=clock) as (_, services, http):
        client = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"])
        assert client.secret is not None and services.chaos is not None
        for _ in range(3):
            assert await token_status(http, client.client_id, client.secret) == 200
        secret_id = client.info.secrets[0].id
        await services.chaos.start(Experiment("dependency_down", "database", clock.now() + timedelta(minutes=5)))
        assert not await services.clients.usage.flush()  # the database refused: nothing lost
        assert services.clients.usage.pending == {secret_id: 3}
        await services.chaos.stop()
        assert await services.clients.usage.flush()
        rows = await services.clients.secrets(client.client_id)
        assert rows[0].use_count == 3 and services.clients.usage.pending == {}


async def test_a_pending_secret_no_key_decrypts_is_refused_and_kept(two: Instances) -> None:
    _clock, (a, _b), (services, _) = two
    client = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"])
    rotated = await services.clients.auto_rotate(client.info.secrets[0].id, seal=lambda value, row_id: "v1.gone.AAAA")
    assert rotated is not None
    _secret, new = rotated
    headers = await admin_headers(a, services)
    url = f"{secrets_url(client.client_id)}/{new.id}/reveal"
    refused = await a.post(url, headers=headers)
    assert refused.status_code == 409 and "decrypt" in refused.json()["error_description"]
    items = (await a.get(secrets_url(client.client_id), headers=headers)).json()["items"]
    assert items[-1]["id"] == new.id and items[-1]["pending_delivery"]  # not erased by the failed attempt
    assert await services.clients.auto_rotate(client.info.secrets[0].id, seal=lambda value, row_id: "x") is None  # once
