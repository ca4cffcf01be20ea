"""Client registration rules that protect the protocol: ids safe in Basic credentials and URLs, signing algs we hold keys for."""

from __future__ import annotations

import pytest

from authserver.clock import FrozenClock
from authserver.services import Services
from authserver.storage.cache.memory import MemoryCache
from authserver.storage.sql.clients import SqlClientStore
from tests.support.factories import make_client


async def test_client_ids_outside_the_unreserved_set_are_refused(services: Services) -> None:
    for client_id in ["a:b", "a+b", "a b", "a%3Ab", "é", "", "x" * 65, "a/b", "a\x00b"]:
        with pytest.raises(ValueError, match="client_id"):
            await make_client(services, client_id=client_id)


async def test_unreserved_client_ids_are_accepted(services: Services) -> None:
    client = await make_client(services, client_id="Ab-9._~z" + services.clock.now().strftime("%H%M%S%f"))
    assert await services.clients.get(client.client_id) is not None


async def test_another_instance_sees_a_change_once_its_cached_copy_is_older_than_the_ttl(services: Services) -> None:
    """The registry cache reads the injected clock: no sleeping, no poking at private state."""
    clock = FrozenClock()
    here, there = (SqlClientStore(services.sessions, clock, cache_ttl=10.0) for _ in range(2))
    client = await make_client(services)
    first = await there.get(client.client_id)
    assert first is not None and not first.disabled
    await here.set_disabled(client.client_id, True)
    clock.advance(9.0)
    cached = await there.get(client.client_id)
    assert cached is not None and not cached.disabled  # still the copy it had
    clock.advance(1.0)
    fresh = await there.get(client.client_id)
    assert fresh is not None and fresh.disabled


async def test_memory_cache_entries_expire_on_the_injected_clock() -> None:
    clock = FrozenClock()
    cache = MemoryCache(clock=clock)
    await cache.set("k", "v", 5)
    assert await cache.add("once", "1", 5) is True and await cache.incr("n", 5) == 1
    clock.advance(4.9)
    assert await cache.get_many(["k", "once"]) == ["v", "1"] and await cache.incr("n", 5) == 2
    clock.advance(0.1)
    assert await cache.get_many(["k", "once"]) == [None, None] and await cache.incr("n", 5) == 1
    assert await cache.add("once", "1", 5) is True
