"""Brute-force locks (RFC 6819 §4.4.3.6, NIST SP 800-63B §5.2.2): per account, per IP, per client at /token."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from authserver.abuse import unlock
from authserver.settings import Settings
from authserver.storage.sql.models import SecurityEvent
from tests.abuse.conftest import login_page, post_login, random_ip, running
from tests.support.factories import make_client, make_user, unique

WRONG = "not the right password at all"


async def events_for(services, **where: str) -> list[SecurityEvent]:  # type: ignore[no-untyped-def]
    await services.events.flush()
    async with services.sessions() as session:
        statement = select(SecurityEvent)
        for name, value in where.items():
            statement = statement.where(getattr(SecurityEvent, name) == value)
        return list((await session.scalars(statement)).all())


async def test_five_failures_lock_the_account_even_for_the_right_password(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings()) as run:
        person = await make_user(run.services)
        form = await login_page(run.http)
        for _ in range(5):
            assert (await post_login(run.http, form, person.username, WRONG)).status_code == 401
        locked = await post_login(run.http, form, person.username, person.password)
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) == 60
        assert "set-cookie" not in locked.headers
        # From another address too: the lock is the account's.
        async with run.client_from(random_ip()) as other:
            assert (await post_login(other, await login_page(other), person.username, person.password)).status_code == 429
        lock_events = await events_for(run.services, event="lockout", account_id=person.account_id)
        assert [e.outcome for e in lock_events] == ["locked"]
        assert lock_events[0].details["scope"] == "account"


async def test_unknown_and_known_usernames_answer_alike(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings()) as run:
        person = await make_user(run.services)
        form = await login_page(run.http)
        answers = {}
        for username in (person.username, unique("nobody")):
            statuses = [(await post_login(run.http, form, username, WRONG)).status_code for _ in range(6)]
            last = await post_login(run.http, form, username, WRONG)
            answers[username == person.username] = (statuses, last.status_code, last.headers.get("retry-after"))
        assert answers[True] == answers[False] == ([401] * 5 + [429], 429, "60")


async def test_locks_grow_and_expire(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings(ip_failures=1000, login_per_ip=1000)) as run:
        person = await make_user(run.services)
        form = await login_page(run.http)
        for expected_lock in (60, 120, 240):
            for _ in range(5):
                assert (await post_login(run.http, form, person.username, WRONG)).status_code == 401
            response = await post_login(run.http, form, person.username, WRONG)
            assert response.status_code == 429
            assert int(response.headers["retry-after"]) == expected_lock
            run.clock.advance(expected_lock - 1)
            assert (await post_login(run.http, form, person.username, WRONG)).status_code == 429
            run.clock.advance(1)
        # Once unlocked, the right password works and resets the escalation.
        assert (await post_login(run.http, form, person.username, person.password)).status_code == 303
        form = await login_page(run.http)
        for _ in range(5):
            await post_login(run.http, form, person.username, WRONG)
        assert (await post_login(run.http, form, person.username, WRONG)).headers["retry-after"] == "60"


async def test_failures_older_than_the_window_do_not_count(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings()) as run:
        person = await make_user(run.services)
        form = await login_page(run.http)
        for _ in range(4):
            await post_login(run.http, form, person.username, WRONG)
        run.clock.advance(3600)
        form = await login_page(run.http)  # the first page's interaction expired with the hour, as it would
        for _ in range(4):
            assert (await post_login(run.http, form, person.username, WRONG)).status_code == 401
        assert (await post_login(run.http, form, person.username, person.password)).status_code == 303


async def test_administrator_unlock(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings()) as run:
        person = await make_user(run.services)
        form = await login_page(run.http)
        for _ in range(5):
            await post_login(run.http, form, person.username, WRONG)
        assert (await post_login(run.http, form, person.username, person.password)).status_code == 429
        assert await unlock(run.services.lockout, run.services.events, username=person.username, by="test",
                            account_id=person.account_id)
        assert (await post_login(run.http, form, person.username, person.password)).status_code == 303
        outcomes = [e.outcome for e in await events_for(run.services, event="lockout", account_id=person.account_id)]
        assert sorted(outcomes) == ["locked", "unlocked"]


async def test_twenty_failures_block_the_ip(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings(account_failures=1000)) as run:
        person = await make_user(run.services)
        form = await login_page(run.http)
        for n in range(20):
            assert (await post_login(run.http, form, unique("guess"), WRONG)).status_code == 401, n
        blocked = await post_login(run.http, form, person.username, person.password)
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) == 900
        # The account itself is not locked: from another address it signs in.
        async with run.client_from(random_ip()) as other:
            assert (await post_login(other, await login_page(other), person.username, person.password)).status_code == 303
        events = await events_for(run.services, event="lockout", ip=run.ip)
        assert [e.details["scope"] for e in events] == ["ip"]


async def test_thresholds_are_configurable(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings(account_failures=2, account_lock_seconds=30)) as run:
        person = await make_user(run.services)
        form = await login_page(run.http)
        for _ in range(2):
            assert (await post_login(run.http, form, person.username, WRONG)).status_code == 401
        response = await post_login(run.http, form, person.username, person.password)
        assert (response.status_code, response.headers["retry-after"]) == (429, "30")


async def test_client_authentication_failures_are_limited(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings(client_failures=3)) as run:
        client = await make_client(run.services, grant_types=["client_credentials"])
        body = {"grant_type": "client_credentials"}
        for _ in range(3):
            response = await run.http.post("/token", data=body, auth=(client.client_id, "wrong-secret"))
            assert response.status_code == 401
        locked = await run.http.post("/token", data=body, auth=(client.client_id, client.secret or ""))
        assert locked.status_code == 429
        assert locked.json()["error"] == "rate_limited"
        assert int(locked.headers["retry-after"]) > 0
        assert locked.headers["cache-control"] == "no-store"
        # Someone failing elsewhere cannot lock the service out.
        async with run.client_from(random_ip()) as service:
            ok = await service.post("/token", data=body, auth=(client.client_id, client.secret or ""))
            assert ok.status_code == 200
        outcomes = [e.outcome for e in await events_for(run.services, event="client_auth", client_id=client.client_id)]
        assert outcomes.count("failure") == 3 and "locked" in outcomes


async def test_client_authentication_failures_per_ip(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings(client_ip_failures=4)) as run:
        client = await make_client(run.services, grant_types=["client_credentials"])
        for _ in range(4):
            response = await run.http.post("/token", data={"grant_type": "client_credentials"}, auth=(unique("c"), "x"))
            assert response.status_code == 401
        response = await run.http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret or ""))
        assert response.status_code == 429
