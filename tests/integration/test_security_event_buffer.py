"""Security events leave the request path: logged at once, stored in batches shortly after
(authserver/events.py), kept while the database is away, read back by this instance at once."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import func, select

from authserver.app import create_app
from authserver.events import SecurityEvents
from authserver.services import Services
from authserver.settings import DatabaseSettings, Settings
from authserver.storage.sql.engine import create_engine, create_sessionmaker
from authserver.storage.sql.models import SecurityEvent
from tests.conftest import ISSUER, fast_passwords
from tests.support.factories import make_client
from tests.support.lifecycle import issue


async def _stored(services: Services, **where: str) -> int:
    async with services.sessions() as session:
        statement = select(func.count()).select_from(SecurityEvent)
        for name, value in where.items():
            statement = statement.where(getattr(SecurityEvent, name) == value)
        return int(await session.scalar(statement) or 0)


async def test_events_are_stored_shortly_after_the_request_and_queries_see_them_at_once(
    http: httpx.AsyncClient, services: Services
) -> None:
    client = await make_client(services)
    wrong = (client.client_id, "cs_wrong")
    answer = await http.post("/token", data={"grant_type": "client_credentials"}, auth=wrong)
    assert answer.status_code == 401
    assert services.events.pending >= 1  # answered before the row was written
    assert [e["event"] for e in await services.events.query(client_id=client.client_id)] == ["client_auth"]  # query flushes
    await http.post("/token", data={"grant_type": "client_credentials"}, auth=wrong)
    for _ in range(50):  # the background flush, FLUSH_DELAY after the first pending event
        if await _stored(services, client_id=client.client_id) == 2:
            break
        await asyncio.sleep(0.05)
    assert await _stored(services, client_id=client.client_id) == 2
    assert services.events.pending == 0


async def test_machine_tokens_are_counted_not_stored_unless_asked(settings: Settings) -> None:
    for store in (False, True):
        configured = dataclasses.replace(
            settings, observability=dataclasses.replace(settings.observability, store_machine_token_events=store)
        )
        app = create_app(configured, passwords=fast_passwords())
        async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
            services: Services = app.state.services
            client = await make_client(services)
            answer = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret or ""))
            assert answer.status_code == 200
            stored = [e["event"] for e in await services.events.query(client_id=client.client_id)]
            assert stored == (["token"] if store else [])
            assert services.metrics.tokens_issued.labels("client_credentials", client.client_id)._value.get() == 1


async def test_rows_wait_for_the_database_and_the_buffer_is_bounded(services: Services) -> None:
    events = SecurityEvents(services.sessions, services.clock, flush_delay=3600, max_pending=3)
    # A real driver refused by a port nobody listens on: the outage the buffer is for.
    unreachable = create_engine(DatabaseSettings(url="postgresql+asyncpg://postgres@127.0.0.1:1/none", pool_timeout=1))
    broken = SecurityEvents(create_sessionmaker(unreachable), services.clock, flush_delay=3600, max_pending=3)
    for outcome in ("a", "b", "c", "d"):
        await broken.record("buffer-test", outcome)
    assert broken.pending == 3 and broken.dropped == 1
    assert await broken.flush() is False and broken.pending == 3  # kept for the retry
    # The same rows, once the database answers, are written once each.
    events._pending = list(broken._pending)
    assert await events.flush() is True
    assert await _stored(services, event="buffer-test") == 3
    await events.close()
    await unreachable.dispose()


async def test_routine_token_events_are_logged_at_debug_and_the_rest_at_info(
    http: httpx.AsyncClient, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="authserver.security"):
        issued = await issue(http, services)  # sign-in (INFO) and a code redeemed for tokens (DEBUG)
        await http.post("/token", data={"grant_type": "client_credentials"}, auth=(issued.client.client_id, "wrong"))
    logged = [r.security_event["event"] for r in caplog.records if r.name == "authserver.security"]  # type: ignore[attr-defined]
    assert "token" not in logged and "login" in logged and "client_auth" in logged
    assert "token" in {e["event"] for e in await services.events.query(client_id=issued.client.client_id)}
