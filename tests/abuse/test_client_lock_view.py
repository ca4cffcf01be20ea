"""Client-authentication locks are answered from each instance's copy of the locks table
(authserver/accounts/lockout.py LockView): at once for locks set here, within the reload interval for
locks set by another instance, and from the last copy while the database is away."""

from __future__ import annotations

import secrets

import pytest

from authserver.accounts.lockout import Lockout, Policy, client_key
from authserver.clock import FrozenClock
from authserver.services import Services
from authserver.settings import DatabaseSettings
from authserver.storage.sql.engine import create_engine, create_sessionmaker

POLICY = Policy(threshold=2, window=3600, base=900, maximum=3600)


def two_instances(services: Services, clock: FrozenClock) -> tuple[Lockout, Lockout]:
    here, there = (Lockout(services.sessions, clock, reset_after=86400, view_seconds=1.0) for _ in range(2))
    return here, there


async def test_a_lock_applies_here_at_once_and_elsewhere_after_the_reload_interval(services: Services) -> None:
    clock = FrozenClock()
    here, there = two_instances(services, clock)
    key = client_key(f"svc-{secrets.token_hex(4)}", "203.0.113.7")
    assert await here.client_locked_for([key]) == 0 and await there.client_locked_for([key]) == 0
    await here.failure(key, POLICY)
    locked = await here.failure(key, POLICY)
    assert locked.locked_for == 900
    assert await here.client_locked_for([key]) > 0  # set here: seen here at once
    assert await there.client_locked_for([key]) == 0  # the other instance's copy is still fresh
    clock.advance(1.0)
    assert 0 < await there.client_locked_for([key]) <= 900  # reloaded: seen there too
    # A third instance learns of the lock at its next failure for that key, before its reload is due.
    third = Lockout(services.sessions, clock, reset_after=86400, view_seconds=1.0)
    assert await third.client_locked_for([key]) > 0  # first use loads the copy
    other = client_key(f"svc-{secrets.token_hex(4)}", "203.0.113.9")
    await here.failure(other, POLICY)
    await here.failure(other, POLICY)
    assert await third.client_locked_for([other]) == 0  # stale copy
    await third.failure(other, POLICY)
    assert await third.client_locked_for([other]) > 0
    assert await here.clear(key)
    assert await here.client_locked_for([key]) == 0


async def test_the_last_copy_answers_while_the_database_is_away(services: Services) -> None:
    clock = FrozenClock()
    here, there = two_instances(services, clock)
    key = client_key(f"svc-{secrets.token_hex(4)}", "203.0.113.8")
    await there.failure(key, POLICY)
    await there.failure(key, POLICY)
    assert await here.client_locked_for([key]) > 0
    unreachable = create_engine(DatabaseSettings(url="postgresql+asyncpg://postgres@127.0.0.1:1/none", pool_timeout=1))
    try:
        here.view._sessions = create_sessionmaker(unreachable)
        clock.advance(5.0)
        assert await here.client_locked_for([key]) > 0  # reload failed: the copy still holds the lock
        fresh = Lockout(create_sessionmaker(unreachable), services.clock, reset_after=86400)
        with pytest.raises(OSError):
            await fresh.client_locked_for([key])  # nothing to answer from: the caller answers 503
    finally:
        await unreachable.dispose()
