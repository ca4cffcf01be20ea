"""Shared short-lived state: one small interface, a Redis implementation and an in-process one."""

from __future__ import annotations

from typing import Protocol

from authserver.clock import Clock


class Cache(Protocol):
    """Key/value with expiry. Values are strings. Every method is atomic on its own."""

    async def get(self, key: str) -> str | None: ...

    async def get_many(self, keys: list[str]) -> list[str | None]:
        """Several values in one round trip, in the order of ``keys``."""
        ...

    async def set(self, key: str, value: str, ttl: float) -> None: ...

    async def add(self, key: str, value: str, ttl: float) -> bool:
        """Set only if absent (a replay guard); True if this call set it."""
        ...

    async def pop(self, key: str) -> str | None:
        """Get and delete in one step (single-use values)."""
        ...

    async def delete(self, key: str) -> None: ...

    async def incr(self, key: str, ttl: float) -> int:
        """Increment a counter, starting its expiry on the first increment; returns the new value."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


def create_cache(url: str, *, key_prefix: str, timeout: float, clock: Clock | None = None) -> Cache:
    if url.startswith("memory://"):
        from authserver.storage.cache.memory import MemoryCache

        return MemoryCache(clock=clock)
    from authserver.storage.cache.redis import RedisCache

    return RedisCache(url, key_prefix=key_prefix, timeout=timeout)


__all__ = ["Cache", "create_cache"]
