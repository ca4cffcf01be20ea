"""Client secrets rotate themselves before they expire (authserver/secret_rotation.py), on one instance of
two, and the new secret reaches the owner: in a signed POST to the client's webhook (a real HTTP receiver
on 127.0.0.1) or, without one, taken once through the admin API; the owner's mail (a real SMTP server)
says what happened and never carries the secret. A service that keeps using its old secret during the
grace and then switches never sees a failed token request. Time is a FrozenClock shared by both
instances; the secret lifetime is shortened to hours so the keys and tokens of the test stay valid."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from authserver.clock import FrozenClock
from authserver.services import Services
from tests.support.admin import admin_headers
from tests.support.apps import running_app
from tests.support.smtp import Inbox, smtp_server
from tests.support.webhook import webhook_receiver

HOUR = 3600
ROTATION_ENV = {
    "AUTHSERVER_CLIENT_SECRETS__LIFETIME": str(10 * HOUR),
    "AUTHSERVER_CLIENT_SECRETS__ROTATE_BEFORE": str(2 * HOUR),
    "AUTHSERVER_ADMIN__SECRET_ROTATION_GRACE": str(HOUR),
    "AUTHSERVER_CLIENT_SECRETS__WEBHOOK_TIMEOUT": "2",
}
OWNER = "sensors-team@cmipro.example"


@pytest.fixture(scope="module")
def smtp_module() -> Iterator[Inbox]:
    yield from smtp_server()


@pytest.fixture
def inbox(smtp_module: Inbox) -> Inbox:
    with smtp_module.lock:
        smtp_module.messages.clear()
    return smtp_module


Instance = tuple[Starlette, Services, httpx.AsyncClient]


@contextlib.asynccontextmanager
async def two_instances(database_url: str, tmp_root: Path, clock: FrozenClock, inbox: Inbox, **env: str) -> AsyncIterator[tuple[Instance, Instance]]:
    settings = {**inbox.env(), **ROTATION_ENV, **env}
    async with running_app(database_url, tmp_root, clock=clock, **settings) as a, \
            running_app(database_url, tmp_root, clock=clock, **settings) as b:
        yield a, b


async def run_jobs(a: Instance, b: Instance) -> list[str]:
    """Both instances look at the schedule at once; the names of the instances that rotated."""
    ran = await asyncio.gather(a[0].state.scheduler.run_due(), b[0].state.scheduler.run_due())
    return [name for name, jobs in zip("ab", ran, strict=True) if "client_secret_rotation" in jobs]


async def token_status(http: httpx.AsyncClient, client_id: str, secret: str) -> int:
    response = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    return response.status_code


async def create_service_client(http: httpx.AsyncClient, services: Services, **contacts: Any) -> dict[str, Any]:
    response = await http.post(
        "/admin/api/clients", headers=await admin_headers(http, services),
        json={"name": "Flood sensors", "client_type": "confidential", "grant_types": ["client_credentials"],
              "scopes": ["read:levels"], **contacts},
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def secrets_of(http: httpx.AsyncClient, services: Services, client_id: str) -> list[dict[str, Any]]:
    response = await http.get(f"/admin/api/clients/{client_id}/secrets", headers=await admin_headers(http, services))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_rotation_on_one_instance_delivers_by_signed_webhook_and_no_token_request_fails(
    own_database: str, tmp_root: Path, inbox: Inbox,
) -> None:
    clock = FrozenClock()
    async with webhook_receiver() as receiver, two_instances(own_database, tmp_root, clock, inbox) as (a, b):
        created = await create_service_client(a[2], a[1], owner_email=OWNER, notification_webhook=receiver.url)
        client_id, current = created["client_id"], created["client_secret"]
        webhook_key = created["notification_webhook_secret"]
        assert webhook_key.startswith("whsec_")
        first_expiry = created["client_secret_expires_at"]
        assert first_expiry == int(clock.now().timestamp()) + 10 * HOUR
        assert await run_jobs(a, b) == []  # the job's first run is one interval after its row appears

        # The service: asks for a token on each instance every 10 minutes with the secret it has deployed;
        # it deploys a delivered secret 50 minutes after it arrives (within the one-hour grace).
        deployed_at: datetime | None = None
        failures, requests, old_uses, rotations = 0, 0, 0, []
        new_secret: str | None = None
        for _ in range(6 * 11):  # 11 hours in 10-minute steps: past the first secret's expiry
            clock.advance(600)
            ran = await run_jobs(a, b)
            assert len(ran) <= 1, ran  # never both instances
            rotations += ran
            if receiver.deliveries and new_secret is None:
                new_secret = receiver.deliveries[0].json()["secret"]["client_secret"]
                deployed_at = clock.now()
            if new_secret is not None and deployed_at is not None and (clock.now() - deployed_at).total_seconds() >= 50 * 60:
                current = new_secret
            for _a, services, http in (a, b):
                status = await token_status(http, client_id, current)
                requests += 1
                failures += status != 200
                old_uses += current == created["client_secret"] and status == 200
        assert requests == 132 and failures == 0
        assert len(rotations) == 11, rotations  # hourly, each time on one instance
        rotated = await a[1].events.query(client_id=client_id, event="client_secret.rotated")
        assert len(rotated) == 1  # and this client's secret rotated once

        # The delivery: one signed POST with the new secret, checked with the Standard Webhooks reference code.
        assert len(receiver.deliveries) == 1 and receiver.attempts == 1
        delivery = receiver.deliveries[0]
        assert delivery.method == "POST" and delivery.headers["content-type"] == "application/json"
        assert delivery.signed_by(webhook_key)
        assert not delivery.signed_by("whsec_" + "A" * 43)
        payload = delivery.json()
        assert payload["type"] == "client_secret.rotated" and payload["client_id"] == client_id
        assert payload["secret"]["label"] == "default" and payload["grace_seconds"] == HOUR
        assert new_secret is not None and new_secret.startswith("cs_") and new_secret != created["client_secret"]

        # The old secret ended one grace after the delivery, on both instances; the new one works.
        for _a, _s, http in (a, b):
            assert await token_status(http, client_id, created["client_secret"]) == 401
            assert await token_status(http, client_id, new_secret) == 200

        # The owner's mail says what rotated and where the secret went, and never carries it.
        mails = inbox.to(OWNER)
        assert len(mails) == 1
        text, html = mails[0].part("plain"), mails[0].part("html")
        assert client_id in text and receiver.url in text
        assert new_secret not in text + html and created["client_secret"] not in text + html

        # Usage: counted in memory per instance, added (not overwritten) by each instance's flush.
        for _a, services, _h in (a, b):
            assert services.clients.usage.pending  # nothing was written per request
            assert await services.clients.usage.flush()
        items = await secrets_of(a[2], a[1], client_id)
        old, new = items
        assert old["label"] == new["label"] == "default"
        assert new["replaces"] == old["id"] and old["rotated_at"] is not None and not new["pending_delivery"]
        assert old["use_count"] == old_uses  # the refused requests are not counted
        assert new["use_count"] == requests - old_uses + 2
        assert not old["valid"] and new["valid"] and datetime.fromisoformat(new["last_used_at"]) == clock.now()


async def test_without_a_webhook_the_owner_takes_the_secret_once_and_the_grace_starts_then(
    own_database: str, tmp_root: Path, inbox: Inbox,
) -> None:
    clock = FrozenClock()
    async with two_instances(own_database, tmp_root, clock, inbox) as (a, b):
        created = await create_service_client(a[2], a[1], owner_email=OWNER)
        client_id, old_secret = created["client_id"], created["client_secret"]
        await run_jobs(a, b)
        clock.advance(8 * HOUR + 1)  # expires in just under 2 hours: due
        assert len(await run_jobs(a, b)) == 1
        items = await secrets_of(a[2], a[1], client_id)
        assert [i["pending_delivery"] for i in items] == [False, True]
        pending_id = items[1]["id"]

        mail = inbox.to(OWNER)
        assert len(mail) == 1
        text = mail[0].part("plain")
        assert f"/admin/api/clients/{client_id}/secrets/{pending_id}/reveal" in text
        assert f"authserver client secret reveal {client_id} {pending_id}" in text

        # Not taken yet: the old secret keeps its own expiry (not a grace counted from the rotation).
        clock.advance(90 * 60)
        assert await token_status(b[2], client_id, old_secret) == 200
        headers = await admin_headers(a[2], a[1])
        revealed = await a[2].post(f"/admin/api/clients/{client_id}/secrets/{pending_id}/reveal", headers=headers)
        assert revealed.status_code == 200, revealed.text
        new_secret = revealed.json()["client_secret"]
        again = await b[2].post(f"/admin/api/clients/{client_id}/secrets/{pending_id}/reveal", headers=headers)
        assert again.status_code == 404  # shown once
        assert await token_status(b[2], client_id, new_secret) == 200
        # The old secret ends at its own expiry (sooner than a full grace from now).
        clock.advance(30 * 60)
        assert await token_status(b[2], client_id, old_secret) == 401
        assert await token_status(a[2], client_id, new_secret) == 200
        # The next run does not rotate the new secret again, nor the old one.
        clock.advance(HOUR)
        await run_jobs(a, b)
        assert len(await secrets_of(a[2], a[1], client_id)) == 2


async def test_a_failing_webhook_is_retried_within_a_run_and_at_the_next_run(
    own_database: str, tmp_root: Path, inbox: Inbox,
) -> None:
    clock = FrozenClock()
    # 3 attempts per run: the first run meets three 503s, the next one succeeds at once.
    async with webhook_receiver(503, 503, 503) as receiver, two_instances(own_database, tmp_root, clock, inbox) as (a, b):
        created = await create_service_client(a[2], a[1], notification_webhook=receiver.url)
        client_id, old_secret = created["client_id"], created["client_secret"]
        await run_jobs(a, b)
        clock.advance(8 * HOUR + 1)
        assert len(await run_jobs(a, b)) == 1
        assert receiver.attempts == 3 and receiver.deliveries == []
        items = await secrets_of(a[2], a[1], client_id)
        assert items[1]["pending_delivery"]
        clock.advance(HOUR)
        await run_jobs(a, b)
        assert receiver.attempts == 4 and len(receiver.deliveries) == 1
        assert receiver.deliveries[0].signed_by(created["notification_webhook_secret"])
        new_secret = receiver.deliveries[0].json()["secret"]["client_secret"]
        assert await token_status(a[2], client_id, new_secret) == 200
        assert await token_status(a[2], client_id, old_secret) == 200  # its grace started at the delivery
        items = await secrets_of(a[2], a[1], client_id)
        assert not items[1]["pending_delivery"]
        events = await a[1].events.query(client_id=client_id, event="client_secret.delivered")
        assert [e["outcome"] for e in events] == ["success", "failure"]


async def test_secrets_of_disabled_or_public_clients_and_revoked_secrets_are_not_rotated(
    own_database: str, tmp_root: Path, inbox: Inbox,
) -> None:
    clock = FrozenClock()
    async with two_instances(own_database, tmp_root, clock, inbox) as (a, b):
        disabled = await create_service_client(a[2], a[1], owner_email=OWNER)
        revoked = await create_service_client(a[2], a[1], owner_email=OWNER)
        headers = await admin_headers(a[2], a[1])
        assert (await a[2].post(f"/admin/api/clients/{disabled['client_id']}/disable", headers=headers)).status_code == 200
        secret_id = (await secrets_of(a[2], a[1], revoked["client_id"]))[0]["id"]
        gone = await a[2].delete(f"/admin/api/clients/{revoked['client_id']}/secrets/{secret_id}", headers=headers)
        assert gone.status_code == 200 and gone.json()["revoked_at"] is not None
        await run_jobs(a, b)
        clock.advance(8 * HOUR + 1)
        await run_jobs(a, b)
        for client in (disabled, revoked):
            assert len(await secrets_of(a[2], a[1], client["client_id"])) == 1
        assert inbox.to(OWNER) == []


async def test_key_encryption_key_rotation_reencrypts_webhook_keys_and_undelivered_secrets(
    own_database: str, tmp_root: Path, inbox: Inbox,
) -> None:
    from sqlalchemy import select

    from authserver.keys.encryption import Encryptor, generate_key, load_or_create_key_file
    from authserver.keys.rotation import KeyManager
    from authserver.storage.sql.clients import pending_aad, webhook_aad
    from authserver.storage.sql.models import Client, ClientSecret

    clock = FrozenClock()
    async with two_instances(own_database, tmp_root, clock, inbox) as (a, b):
        created = await create_service_client(a[2], a[1], notification_webhook="https://hooks.example/never")
        await run_jobs(a, b)
        clock.advance(8 * HOUR + 1)
        await run_jobs(a, b)  # the webhook cannot be reached: the new secret stays pending
        services = a[1]
        keys, active = load_or_create_key_file(services.settings.security.key_file)
        rotated = Encryptor({**keys, "kek2": generate_key()}, "kek2")
        manager = KeyManager(services.sessions, clock, rotated, services.keys, services.settings, events=services.events)
        counts = await manager.reencrypt()
        assert counts["failed"] == 0 and counts["reencrypted"] >= 2
        async with services.sessions() as session:
            key = await session.scalar(select(Client.webhook_secret_encrypted).where(Client.client_id == created["client_id"]))
            pending = (await session.execute(
                select(ClientSecret.id, ClientSecret.pending_secret_encrypted)
                .where(ClientSecret.client_id == created["client_id"], ClientSecret.pending_secret_encrypted.is_not(None))
            )).one()
        assert key is not None and key.startswith("v1.kek2.")
        assert rotated.decrypt(key, aad=webhook_aad(created["client_id"])).decode() == created["notification_webhook_secret"]
        assert pending[1].startswith("v1.kek2.")
        assert rotated.decrypt(pending[1], aad=pending_aad(pending[0])).decode().startswith("cs_")
        assert active in keys
