"""Rate limits shared by every instance (RFC 6585 §4 429, draft-ietf-httpapi-ratelimit-headers).

The algorithm is a sliding-window counter: the count of the current fixed window plus the previous
window's count weighted by how much of it still overlaps the sliding window. It needs two integers per
key, and on Redis the check and the increment are one Lua script, so one round trip and atomic
(SPEC R-05: partial failures neither double-count nor skip).

Leases keep the hot paths off the network: for a limit guarding an unguessable secret (a client's token,
introspection or revocation budget), the shared counter is advanced by a chunk of the budget at once
(``lease``, about 1/32 of the limit) and the instance spends it locally, so one Redis round trip serves
many requests. The global limit still holds: a lease is only granted from room left in the shared
window, and what an instance leaves unspent when the window turns counts as used (the limit becomes at
most ``lease`` per instance stricter, never looser). Limits guarding human-chosen secrets use no lease.

``ResilientLimiter`` keeps limiting when Redis is unreachable (SPEC R-04): it falls back to a
per-instance in-memory limiter for ``breaker_seconds`` (a small circuit breaker), with the limit divided
by ``fallback_divisor`` for anything guarding a human-chosen secret (``strict``), and the normal limit
as a local floor for paths whose secrets are unguessable. It never allows unlimited guessing and never
raises.

Time comes from the caller (``services.clock``), so every instance with NTP decides alike and tests can
use a frozen clock.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("authserver.ratelimit")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    # Seconds until a request would be allowed again (0 when allowed).
    retry_after: int
    # Seconds until the window has fully drained.
    reset: int
    degraded: bool = False

    def headers(self) -> dict[str, str]:
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(max(self.reset, self.retry_after)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(self.retry_after, 1))
        return headers


class Limiter(Protocol):
    async def hit(self, key: str, *, limit: int, window: float, now: float, cost: int = 1, lease: int = 1) -> Decision:
        """Count ``cost`` requests for ``key`` if that stays within ``limit`` per ``window`` seconds.

        ``cost=0`` only asks whether one more request would be allowed. ``lease`` > 1 lets a shared
        store count up to that many at once and answer the next ones from the instance's share.
        """
        ...


def lease_for(limit: int) -> int:
    """The chunk of a limit an instance may take from the shared store at once (1: no lease)."""
    return max(1, limit // 32)


def decide(cur: int, prev: int, *, limit: int, window: float, elapsed: float, cost: int, allowed: bool | None = None) -> Decision:
    """The decision for counters ``cur`` (this window) and ``prev`` (the one before), ``elapsed`` s into this one.

    ``cur`` is the value *after* the increment when the request was allowed and counted.
    """
    need = max(cost, 1)
    weight = (window - elapsed) / window
    if allowed is None:
        allowed = prev * weight + cur + need <= limit
    counted = cur - (cost if allowed else 0)
    count_now = prev * weight + cur
    remaining = max(0, math.floor(limit - count_now))
    retry = 0.0
    if not allowed:
        if counted + need <= limit:
            # Wait until enough of the previous window has slid out.
            retry = (window - elapsed) - (limit - counted - need) * window / prev if prev else 0.0
        else:
            # Wait for the next window, then until enough of this one has slid out.
            retry = (window - elapsed) + (window - (limit - need) * window / counted if counted else 0.0)
    reset = (window - elapsed) + (window if cur else 0)
    return Decision(allowed, limit, remaining, max(math.ceil(retry), 1) if not allowed else 0, math.ceil(reset))


def _window(now: float, window: float) -> tuple[int, float]:
    index = int(now // window)
    return index, now - index * window


class MemoryLimiter:
    """Per-process limiter: the embedded default, and the floor when Redis is unreachable."""

    def __init__(self, *, max_keys: int = 100_000) -> None:
        self._counts: dict[str, tuple[int, int, int]] = {}  # key -> (window index, cur, prev)
        self._max_keys = max_keys

    async def hit(self, key: str, *, limit: int, window: float, now: float, cost: int = 1, lease: int = 1) -> Decision:
        index, elapsed = _window(now, window)
        key = f"{key}|{window}"
        entry = self._counts.get(key)
        if entry is None:
            cur, prev = 0, 0
        elif entry[0] == index:
            cur, prev = entry[1], entry[2]
        elif entry[0] == index - 1:
            cur, prev = 0, entry[1]
        else:
            cur, prev = 0, 0
        need = max(cost, 1)
        allowed = prev * (window - elapsed) / window + cur + need <= limit
        if allowed and cost > 0:
            cur += cost
            if len(self._counts) >= self._max_keys and key not in self._counts:
                self._sweep(index)
            self._counts[key] = (index, cur, prev)
        return decide(cur, prev, limit=limit, window=window, elapsed=elapsed, cost=cost, allowed=allowed)

    def _sweep(self, index: int) -> None:
        for key in [k for k, v in self._counts.items() if v[0] < index - 1]:
            del self._counts[key]
        while len(self._counts) >= self._max_keys:
            self._counts.pop(next(iter(self._counts)))


# KEYS[1] this window's counter, KEYS[2] the previous one; ARGV limit, window ms, elapsed ms, cost, lease.
# Counts max(cost, lease) when that fits, else as much of it as fits (at least cost); returns the count.
_SLIDING_WINDOW = """
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local elapsed = tonumber(ARGV[3])
local cost = tonumber(ARGV[4])
local lease = tonumber(ARGV[5])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local prev = tonumber(redis.call('GET', KEYS[2]) or '0')
local need = cost
if need < 1 then need = 1 end
local allowed = 0
local counted = 0
local room = limit - prev * (window - elapsed) / window - cur
if room >= need then
  allowed = 1
  if cost > 0 then
    counted = math.max(cost, math.min(lease, math.floor(room)))
    cur = redis.call('INCRBY', KEYS[1], counted)
    redis.call('PEXPIRE', KEYS[1], window * 2)
  end
end
return {allowed, cur, prev, counted}
"""


class RedisLimiter:
    """Sliding-window counter in Redis: one EVALSHA per decision, or per lease (see the module docstring)."""

    def __init__(self, url: str, *, key_prefix: str, timeout: float, max_leases: int = 10_000) -> None:
        self._redis: Redis = Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, decode_responses=True,
            retry_on_timeout=False,
        )
        self._prefix = f"{key_prefix}rl:"
        self._script = self._redis.register_script(_SLIDING_WINDOW)
        # key -> (window index, requests counted in Redis but not yet spent here, last decision's counters)
        self._leases: dict[str, tuple[int, int, int, int]] = {}
        self._leasing: dict[str, asyncio.Future[None]] = {}
        self._max_leases = max_leases

    async def hit(self, key: str, *, limit: int, window: float, now: float, cost: int = 1, lease: int = 1) -> Decision:
        index, elapsed = _window(now, window)
        base = f"{self._prefix}{key}|{int(window)}:"
        leasing: asyncio.Future[None] | None = None
        if cost > 0 and lease > 1:
            # One lease request per key at a time: requests arriving meanwhile wait for it and spend from it,
            # instead of each taking a lease of its own (which would count a whole burst of leases at once).
            while True:
                if spent := self.spend_lease(key, limit=limit, window=window, now=now, cost=cost):
                    return spent
                pending = self._leasing.get(base)
                if pending is None:
                    break
                await asyncio.shield(pending)
            leasing = self._leasing[base] = asyncio.get_running_loop().create_future()
        window_ms = max(int(window * 1000), 1)
        try:
            result = await self._script(
                keys=[f"{base}{index}", f"{base}{index - 1}"],
                args=[limit, window_ms, int(elapsed * 1000), cost, max(lease, 1)],
            )
        finally:
            if leasing is not None:
                del self._leasing[base]
                leasing.set_result(None)
        allowed, cur, prev, counted = (int(v) for v in result)
        if allowed and counted > cost:
            self._keep_lease(base, index, counted - cost, cur, prev)
        return decide(cur, prev, limit=limit, window=window, elapsed=elapsed, cost=cost, allowed=bool(allowed))

    def spend_lease(self, key: str, *, limit: int, window: float, now: float, cost: int = 1) -> Decision | None:
        """Allow ``cost`` requests from this instance's lease for ``key``, if it has that much; else None."""
        base = f"{self._prefix}{key}|{int(window)}:"
        held = self._leases.get(base)
        if held is None or held[1] < cost:
            return None
        index, elapsed = _window(now, window)
        if held[0] != index:
            return None
        self._leases[base] = (index, held[1] - cost, held[2], held[3])
        # What is left of the whole budget is not known here without a round trip: "remaining" is the share.
        return Decision(True, limit, held[1] - cost, 0, math.ceil(2 * window - elapsed))

    def _keep_lease(self, base: str, index: int, spare: int, cur: int, prev: int) -> None:
        held = self._leases.get(base)
        if held is not None and held[0] == index:
            spare += held[1]  # parallel requests leased at once: keep both shares
        elif len(self._leases) >= self._max_leases:
            self._leases = {k: v for k, v in self._leases.items() if v[0] >= index}
            if len(self._leases) >= self._max_leases:
                self._leases.pop(next(iter(self._leases)))
        self._leases[base] = (index, spare, cur, prev)

    async def close(self) -> None:
        await self._redis.aclose()


# Errors that mean "Redis is not there or not answering", never "the request is bad".
BACKEND_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)


class ResilientLimiter:
    """A shared limiter that degrades to a per-instance floor instead of failing open or raising."""

    def __init__(
        self,
        primary: Limiter,
        *,
        fallback_divisor: int,
        breaker_seconds: float,
        on_degraded: Callable[[str], Awaitable[None]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.floor = MemoryLimiter()
        self._divisor = fallback_divisor
        self._breaker = breaker_seconds
        self._open_until = 0.0
        self._on_degraded = on_degraded
        self._monotonic = monotonic

    @property
    def degraded(self) -> bool:
        return self._monotonic() < self._open_until

    def spend_lease(self, key: str, *, limit: int, window: float, now: float) -> Decision | None:
        """The shared limiter's lease for ``key`` (no I/O), unless Redis is being bypassed; else None."""
        spend = getattr(self.primary, "spend_lease", None)
        if spend is None or self.degraded:
            return None
        decision: Decision | None = spend(key, limit=limit, window=window, now=now)
        return decision

    async def hit(
        self, key: str, *, limit: int, window: float, now: float, cost: int = 1, strict: bool = False, lease: int = 1
    ) -> Decision:
        if not self.degraded:
            try:
                return await self.primary.hit(key, limit=limit, window=window, now=now, cost=cost, lease=lease)
            except BACKEND_ERRORS as error:
                self._open_until = self._monotonic() + self._breaker
                log.warning("rate limiter degraded: shared store unreachable (%s); per-instance limits for %.0f s",
                            type(error).__name__, self._breaker)
                if self._on_degraded is not None:
                    try:
                        await self._on_degraded(type(error).__name__)
                    except Exception:
                        log.exception("could not report degraded rate limiting")
        floor_limit = max(1, limit // self._divisor) if strict else limit
        decision = await self.floor.hit(key, limit=floor_limit, window=window, now=now, cost=cost)
        return Decision(decision.allowed, decision.limit, decision.remaining, decision.retry_after, decision.reset, degraded=True)

    async def close(self) -> None:
        close = getattr(self.primary, "close", None)
        if close is not None:
            await close()
