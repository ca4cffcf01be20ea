"""In-process cache for the embedded default (one process only; the server refuses workers > 1 with it)."""

from __future__ import annotations

from authserver.clock import Clock, SystemClock


class MemoryCache:
    def __init__(self, *, clock: Clock | None = None, max_entries: int = 100_000) -> None:
        self._data: dict[str, tuple[float, str]] = {}
        self._max_entries = max_entries
        self._monotonic = (clock or SystemClock()).monotonic

    def _live(self, key: str) -> str | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] <= self._monotonic():
            del self._data[key]
            return None
        return entry[1]

    def _put(self, key: str, value: str, ttl: float) -> None:
        if len(self._data) >= self._max_entries:
            self._sweep()
        self._data[key] = (self._monotonic() + ttl, value)

    def _sweep(self) -> None:
        now = self._monotonic()
        for key in [k for k, (exp, _) in self._data.items() if exp <= now]:
            del self._data[key]
        while len(self._data) >= self._max_entries:
            self._data.pop(next(iter(self._data)))

    async def get(self, key: str) -> str | None:
        return self._live(key)

    async def get_many(self, keys: list[str]) -> list[str | None]:
        return [self._live(key) for key in keys]

    async def set(self, key: str, value: str, ttl: float) -> None:
        self._put(key, value, ttl)

    async def add(self, key: str, value: str, ttl: float) -> bool:
        if self._live(key) is not None:
            return False
        self._put(key, value, ttl)
        return True

    async def pop(self, key: str) -> str | None:
        value = self._live(key)
        self._data.pop(key, None)
        return value

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def incr(self, key: str, ttl: float) -> int:
        entry = self._data.get(key)
        if entry is None or entry[0] <= self._monotonic():
            self._data[key] = (self._monotonic() + ttl, "1")
            return 1
        value = int(entry[1]) + 1
        self._data[key] = (entry[0], str(value))
        return value

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()
