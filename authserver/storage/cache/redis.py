"""Redis cache shared by every instance (redis-py asyncio client, tight timeouts)."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError


class RedisCache:
    def __init__(self, url: str, *, key_prefix: str, timeout: float) -> None:
        self._redis: Redis = Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True,
            health_check_interval=30,
        )
        self._prefix = key_prefix

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def get(self, key: str) -> str | None:
        value = await self._redis.get(self._k(key))
        return None if value is None else str(value)

    async def get_many(self, keys: list[str]) -> list[str | None]:
        values = await self._redis.mget([self._k(key) for key in keys])
        return [None if value is None else str(value) for value in values]

    async def set(self, key: str, value: str, ttl: float) -> None:
        await self._redis.set(self._k(key), value, px=max(int(ttl * 1000), 1))

    async def add(self, key: str, value: str, ttl: float) -> bool:
        return bool(await self._redis.set(self._k(key), value, px=max(int(ttl * 1000), 1), nx=True))

    async def pop(self, key: str) -> str | None:
        value = await self._redis.getdel(self._k(key))
        return None if value is None else str(value)

    async def delete(self, key: str) -> None:
        await self._redis.delete(self._k(key))

    async def incr(self, key: str, ttl: float) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(self._k(key))
            pipe.pexpire(self._k(key), max(int(ttl * 1000), 1), nx=True)
            value, _ = await pipe.execute()
        return int(value)

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        await self._redis.aclose()
