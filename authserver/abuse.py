"""Abuse protection in one place: rate-limit guards, emergency mode and brute-force policies.

Endpoints call :meth:`RateLimits.check` with a scope and a key; it raises
:class:`~authserver.errors.TooManyRequests` (429, with ``Retry-After`` and ``RateLimit-*`` headers) when
the key is over its limit, and records a ``ratelimit`` security event once per key and window. See
docs/abuse-protection.md for the scopes and how to guard a new endpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.accounts.lockout import Lockout, Policy, account_key, ip_key
from authserver.clock import Clock
from authserver.errors import TooManyRequests
from authserver.events import SecurityEvents
from authserver.ratelimit import Decision, ResilientLimiter, lease_for
from authserver.settings import AbuseSettings
from authserver.storage.sql.models import ServerFlag

log = logging.getLogger("authserver.abuse")

WINDOW = 60.0  # every rate limit is "per minute"


@dataclass(frozen=True)
class Scope:
    name: str
    # The AbuseSettings field holding its per-minute limit.
    setting: str
    # Keyed by client IP (anonymous or sign-in traffic): tightened in emergency mode.
    anonymous: bool
    # Guards a human-chosen secret (password, TOTP, backup code): stricter floor when Redis is down.
    strict: bool


SCOPES = {
    s.name: s
    for s in (
        Scope("authorize", "authorize_per_ip", anonymous=True, strict=False),
        Scope("login", "login_per_ip", anonymous=True, strict=True),
        Scope("mfa", "mfa_per_ip", anonymous=True, strict=True),
        Scope("token", "token_per_client", anonymous=False, strict=False),
        Scope("introspection", "introspection_per_client", anonymous=False, strict=False),
        Scope("revocation", "revocation_per_client", anonymous=False, strict=False),
        Scope("userinfo", "userinfo_per_token", anonymous=False, strict=False),
        # Password reset by mail: per IP, and per address (sha256 of it) so one inbox cannot be flooded.
        Scope("password_reset", "password_reset_per_ip", anonymous=True, strict=True),
        Scope("password_reset_address", "password_reset_per_address", anonymous=True, strict=True),
    )
}


class Emergency:
    """The operator's emergency switch: a row in ``server_flags``, read by every instance (cached 5 s)."""

    FLAG = "emergency"
    CACHE_SECONDS = 5.0

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, events: SecurityEvents) -> None:
        self._sessions = sessions
        self._clock = clock
        self._events = events
        self._cached: tuple[float, bool] | None = None

    async def is_on(self) -> bool:
        now = self._clock.now().timestamp()
        if self._cached is not None and now - self._cached[0] < self.CACHE_SECONDS:
            return self._cached[1]
        try:
            state = await self.status()
            on = bool(state["on"])
        except Exception:  # noqa: BLE001 - the database being down must not flip the switch or fail the request
            log.warning("could not read the emergency flag; keeping the last known state")
            on = self._cached[1] if self._cached else False
        self._cached = (now, on)
        return on

    async def status(self) -> dict[str, object]:
        async with self._sessions() as session:
            row = await session.get(ServerFlag, self.FLAG)
        if row is None:
            return {"on": False, "since": None, "by": None, "reason": None}
        return {"on": bool(row.value.get("on")), "since": row.updated_at.isoformat(), "by": row.value.get("by"),
                "reason": row.value.get("reason")}

    async def set(self, on: bool, *, by: str, reason: str | None = None) -> None:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            row = await session.get(ServerFlag, self.FLAG, with_for_update=True)
            value = {"on": on, "by": by[:100], "reason": (reason or "")[:300] or None}
            if row is None:
                session.add(ServerFlag(name=self.FLAG, value=value, updated_at=now))
            else:
                row.value = value
                row.updated_at = now
        self._cached = (now.timestamp(), on)
        await self._events.record("emergency", "on" if on else "off", actor=by[:100], reason=(reason or "")[:300] or None)


class RateLimits:
    """The guard every endpoint calls: ``await services.limiter.check("token", client_id)``."""

    def __init__(self, limiter: ResilientLimiter, settings: AbuseSettings, clock: Clock, events: SecurityEvents,
                 emergency: Emergency) -> None:
        self.limiter = limiter
        self._settings = settings
        self._clock = clock
        self._events = events
        self.emergency = emergency
        self._reported: dict[str, float] = {}

    def _configured(self, spec: Scope, override: int | None) -> int:
        return override if override and override > 0 else int(getattr(self._settings, spec.setting))

    async def limit_for(self, scope: str, *, override: int | None = None) -> int:
        spec = SCOPES[scope]
        limit = self._configured(spec, override)
        if spec.anonymous and await self.emergency.is_on():
            limit = max(1, limit // self._settings.emergency_divisor)
        return limit

    async def check(self, scope: str, key: str, *, limit: int | None = None, ip: str | None = None,
                    client_id: str | None = None, account_id: str | None = None, user_agent: str | None = None) -> Decision:
        """Count one request of ``scope`` for ``key``; raise TooManyRequests (429) when over the limit.

        ``limit`` overrides the configured per-minute limit (e.g. a client's ``rate_limit_per_minute``).
        ``ip``, ``client_id``, ``account_id`` and ``user_agent`` only describe the request in the security event.
        """
        spec = SCOPES[scope]
        counted = f"{scope}:{key}"
        now = self._clock.now().timestamp()
        if not spec.anonymous:
            effective = self._configured(spec, limit)  # emergency mode tightens anonymous scopes only
            lease = 1 if spec.strict else lease_for(effective)
            # Most requests of a busy client are paid from this instance's lease: no await, no round trip.
            if lease > 1 and (spent := self.limiter.spend_lease(counted, limit=effective, window=WINDOW, now=now)):
                return spent
        else:
            effective, lease = await self.limit_for(scope, override=limit), 1
        decision = await self.limiter.hit(counted, limit=effective, window=WINDOW, now=now, strict=spec.strict, lease=lease)
        if decision.allowed:
            return decision
        await self._report(scope, key, decision, ip=ip, client_id=client_id, account_id=account_id, user_agent=user_agent)
        error = TooManyRequests()
        error.headers.update(decision.headers())
        raise error

    async def _report(self, scope: str, key: str, decision: Decision, *, ip: str | None, client_id: str | None,
                      account_id: str | None, user_agent: str | None) -> None:
        """One ``ratelimit`` event per key and window, so a flood cannot turn into a flood of rows."""
        now = self._clock.monotonic()
        marker = f"{scope}:{key}"
        if self._reported.get(marker, 0.0) > now:
            return
        if len(self._reported) > 10_000:
            self._reported = {k: v for k, v in self._reported.items() if v > now}
        self._reported[marker] = now + WINDOW
        await self._events.record(
            "ratelimit", "denied", ip=ip, client_id=client_id, account_id=account_id, user_agent=user_agent, scope=scope,
            limit=decision.limit, degraded=decision.degraded, emergency=await self.emergency.is_on(),
        )

    # Brute-force policies from settings; emergency mode tightens the per-IP sign-in threshold.
    def account_policy(self) -> Policy:
        s = self._settings
        return Policy(s.account_failures, s.account_failure_window, s.account_lock_seconds, s.account_lock_max_seconds)

    async def ip_policy(self) -> Policy:
        s = self._settings
        threshold = s.ip_failures
        if await self.emergency.is_on():
            threshold = max(1, threshold // s.emergency_divisor)
        return Policy(threshold, s.ip_failure_window, s.ip_lock_seconds, s.ip_lock_max_seconds)

    def client_policy(self) -> Policy:
        s = self._settings
        return Policy(s.client_failures, s.client_failure_window, s.ip_lock_seconds, s.ip_lock_max_seconds)

    def client_ip_policy(self) -> Policy:
        s = self._settings
        return Policy(s.client_ip_failures, s.client_failure_window, s.ip_lock_seconds, s.ip_lock_max_seconds)

    async def close(self) -> None:
        await self.limiter.close()


async def unlock(lockout: Lockout, events: SecurityEvents, *, username: str | None = None, ip: str | None = None,
                 by: str, account_id: str | None = None) -> bool:
    """Administrator unlock of a username's password step and/or an IP's sign-in block; True if one was set."""
    cleared = False
    if username is not None:
        cleared |= await lockout.clear(account_key(username))
    if ip is not None:
        cleared |= await lockout.clear(ip_key(ip))
    await events.record("lockout", "unlocked", account_id=account_id, ip=ip, actor=by[:100], cleared=cleared)
    return cleared


def retry_error(seconds: int) -> TooManyRequests:
    error = TooManyRequests()
    error.headers["Retry-After"] = str(max(1, seconds))
    return error


__all__ = ["SCOPES", "Emergency", "RateLimits", "Scope", "retry_error", "unlock"]
