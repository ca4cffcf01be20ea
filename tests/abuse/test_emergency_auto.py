"""Emergency mode protects itself: a flood of failed sign-ins, counted across instances in the shared
limiter, switches it on (seen by both instances); it ends by itself after abuse.emergency_duration; the
security log says why it turned on and off; the gauge follows; machine tokens stay unaffected.
A FrozenClock shared by both instances drives the time."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from authserver.settings import Settings, load_settings
from tests.abuse.conftest import random_ip, real_limits, running, try_login
from tests.conftest import RUN_ID, environ_for
from tests.support.factories import make_client

HOUR = 3600


@pytest.fixture
def own_settings(own_database: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings on a database of the test's own (the clock moves an hour: no future-dated rows in the shared
    one) and a Redis prefix of its own (the trigger's counter is one key: no other test adds to it)."""
    backend = "postgres" if own_database.startswith("postgresql") else "sqlite"

    def build(**limits: Any) -> Settings:
        env = {**real_limits(**limits), "AUTHSERVER_CACHE__KEY_PREFIX": f"authserver-test-{RUN_ID}:{secrets.token_hex(4)}:"}
        return load_settings(environ_for(backend, own_database, tmp_path, **env))

    return build


def _gauge(run) -> str:  # type: ignore[no-untyped-def]
    text = run.services.metrics.exposition()[0].decode()
    return next(line for line in text.splitlines() if line.startswith("authserver_emergency_mode"))


async def test_a_flood_of_failed_sign_ins_turns_it_on_for_both_instances(own_settings: Callable[..., Settings]) -> None:
    settings = own_settings(
        emergency_trigger_failures=6, emergency_trigger_window=60, emergency_duration=HOUR,
        token_per_client=1000,
    )
    async with running(settings) as a, running(settings, clock=a.clock) as b:
        client = await make_client(a.services, grant_types=["client_credentials"])
        assert not await a.services.limiter.emergency.is_on()
        try:
            for n in range(5):
                # From many addresses (no per-IP lock), spread over both instances when the count is shared
                # (Redis); the in-process limiter of the SQLite setup counts per instance.
                run = b if settings.cache.url.startswith("redis") and n % 2 else a
                async with run.client_from(random_ip()) as http:
                    assert (await try_login(http, f"nobody-{secrets.token_hex(3)}", "wrong")).status_code == 401
            a.clock.advance(6)
            assert not await a.services.limiter.emergency.is_on() and not await b.services.limiter.emergency.is_on()
            async with a.client_from(random_ip()) as http:
                assert (await try_login(http, "nobody-final", "wrong")).status_code == 401  # the sixth
            assert await a.services.limiter.emergency.is_on()
            a.clock.advance(6)  # past the other instance's 5-second cache
            assert await b.services.limiter.emergency.is_on()
            state = await b.services.limiter.emergency.status()
            assert state["by"] == "automatic" and state["automatic"] and "6 failed sign-ins" in str(state["reason"])
            assert _gauge(b).endswith(" 1.0")
            # Machine tokens (the alert senders) are not affected.
            auth = (client.client_id, client.secret or "")
            for run in (a, b):
                for _ in range(5):
                    response = await run.http.post("/token", data={"grant_type": "client_credentials"}, auth=auth)
                    assert response.status_code == 200, response.text
            await b.services.events.flush()
            events = await a.services.events.query(event="emergency", outcome="on", limit=5)
            assert events[0]["details"]["actor"] == "automatic" and events[0]["details"]["until"]
            # Further failures do not switch it on again (one event for the whole flood).
            async with b.client_from(random_ip()) as http:
                await try_login(http, "nobody-more", "wrong")
            again = await a.services.events.query(event="emergency", outcome="on", limit=5)
            assert again[0]["id"] == events[0]["id"]
        finally:
            await a.services.limiter.emergency.set(False, by="test")


async def test_it_ends_by_itself_after_its_duration_and_says_so(own_settings: Callable[..., Settings]) -> None:
    settings = own_settings(emergency_duration=HOUR)
    async with running(settings) as a, running(settings, clock=a.clock) as b:
        emergency = a.services.limiter.emergency
        try:
            reason = f"huracán {secrets.token_hex(3)}"
            await emergency.set(True, by="test", reason=reason)
            a.clock.advance(HOUR - 1)
            assert await a.services.limiter.emergency.is_on() and await b.services.limiter.emergency.is_on()
            assert _gauge(b).endswith(" 1.0")
            a.clock.advance(6)  # past the end, and past each instance's 5-second cache
            assert not await b.services.limiter.emergency.is_on()
            assert not await a.services.limiter.emergency.is_on()
            assert _gauge(b).endswith(" 0.0")
            state = await a.services.limiter.emergency.status()
            assert state["on"] is False and state["reason"] == "expired"
            await b.services.events.flush()  # whichever instance noticed the end wrote the event
            events = await a.services.events.query(event="emergency", limit=20)
            ended = [e for e in events if e["outcome"] == "off" and e["details"].get("was", {}).get("reason") == reason]
            assert len(ended) == 1 and ended[0]["details"]["reason"] == "expired"  # written once, by one instance
            assert ended[0]["details"]["actor"] == "automatic"
            assert any(e["outcome"] == "on" and e["details"]["reason"] == reason for e in events)
            # An explicit duration overrides the default.
            await emergency.set(True, by="test", reason="short", duration=120)
            a.clock.advance(121)
            assert not await b.services.limiter.emergency.is_on()
        finally:
            await emergency.set(False, by="test")


async def test_the_trigger_is_off_with_zero(own_settings: Callable[..., Settings]) -> None:
    settings = own_settings(emergency_trigger_failures=0)
    async with running(settings) as a:
        for _ in range(3):
            await a.services.limiter.note_failure()
        assert not await a.services.limiter.emergency.is_on()


async def test_refused_anonymous_requests_count_towards_the_trigger(own_settings: Callable[..., Settings]) -> None:
    settings = own_settings(emergency_trigger_failures=3, authorize_per_ip=2)
    async with running(settings) as a:
        try:
            statuses = [(await a.http.get("/authorize")).status_code for _ in range(4)]
            assert statuses == [400, 400, 429, 429]
            assert not await a.services.limiter.emergency.is_on()
            assert (await a.http.get("/authorize")).status_code == 429  # the third refusal
            assert await a.services.limiter.emergency.is_on()
        finally:
            await a.services.limiter.emergency.set(False, by="test")
