"""Abuse protection in one place: rate-limit guards, emergency mode and brute-force policies.

Endpoints call :meth:`RateLimits.check` with a scope and a key; it raises
:class:`~authserver.errors.TooManyRequests` (429, with ``Retry-After`` and ``RateLimit-*`` headers) when
the key is over its limit, and records a ``ratelimit`` security event once per key and window. See
docs/abuse-protection.md for the scopes and how to guard a new endpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.accounts.lockout import Lockout, Policy, account_key, ip_key
from authserver.clock import Clock
from authserver.errors import TooManyRequests
from authserver.events import SecurityEvents
from authserver.metrics import Metrics
from authserver.ratelimit import Decision, ResilientLimiter, lease_for
from authserver.settings import AbuseSettings
from authserver.storage.sql.models import ServerFlag

log = logging.getLogger("authserver.abuse")

WINDOW = 60.0  # every rate limit is "per minute"
# The shared counter of failed sign-ins and refused anonymous requests (the automatic emergency trigger).
TRIGGER_KEY = "emergency:failures"


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
        # Sign-up: per IP (each POST, accepted or not, so username availability is no free oracle).
        Scope("signup", "signup_per_ip", anonymous=True, strict=True),
    )
}


class Emergency:
    """Emergency mode: a row in ``server_flags``, read by every instance (cached 5 s), that protects itself.

    It is switched on by an operator (CLI, admin API) or automatically by :meth:`RateLimits.note_failure`
    (a flood of failed sign-ins across instances), and always for a bounded time: ``until`` is set when it
    turns on (``abuse.emergency_duration``, 1 h, unless the operator gives a duration). Past ``until`` it
    reads as off everywhere at once; the first instance to notice writes the change and the ``emergency
    off`` event (reason ``expired``), so the log tells why it ended. The ``authserver_emergency_mode``
    gauge follows each read.
    """

    FLAG = "emergency"
    CACHE_SECONDS = 5.0

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, events: SecurityEvents, *,
                 duration: int = 3600, metrics: Metrics | None = None) -> None:
        self._sessions = sessions
        self._clock = clock
        self._events = events
        self._duration = duration
        self._metrics = metrics
        self._cached: tuple[float, bool] | None = None

    async def is_on(self) -> bool:
        now = self._clock.now().timestamp()
        if self._cached is not None and now - self._cached[0] < self.CACHE_SECONDS:
            return self._cached[1]
        try:
            state = await self.status()
            on = bool(state["on"])
            if state["expired"]:
                await self._expire()
        except Exception:  # noqa: BLE001 - the database being down must not flip the switch or fail the request
            log.warning("could not read the emergency flag; keeping the last known state")
            on = self._cached[1] if self._cached else False
        self._remember(on)
        return on

    def _remember(self, on: bool) -> None:
        self._cached = (self._clock.now().timestamp(), on)
        if self._metrics is not None:
            self._metrics.set_emergency(on)

    async def status(self) -> dict[str, object]:
        """``on`` (in force now), ``since``, ``until``, ``by``, ``reason``, ``automatic``; ``expired``: on
        in the table but past ``until`` (not yet written back)."""
        async with self._sessions() as session:
            row = await session.get(ServerFlag, self.FLAG)
        if row is None:
            return {"on": False, "since": None, "until": None, "by": None, "reason": None, "automatic": False, "expired": False}
        stored = bool(row.value.get("on"))
        until = row.value.get("until")
        expired = stored and until is not None and datetime.fromisoformat(until) <= self._clock.now()
        return {"on": stored and not expired, "since": row.updated_at.isoformat(), "until": until if stored else None,
                "by": row.value.get("by"), "reason": row.value.get("reason"),
                "automatic": bool(row.value.get("automatic")), "expired": expired}

    async def set(self, on: bool, *, by: str, reason: str | None = None, duration: int | None = None) -> None:
        """Switch it on (for ``duration`` seconds, default ``abuse.emergency_duration``) or off."""
        await self._write(on, by=by, reason=reason, duration=duration)

    async def trip(self, reason: str) -> bool:
        """The automatic trigger: on for the default duration unless already on; True if this call turned it on."""
        return await self._write(True, by="automatic", reason=reason, only_if_off=True)

    async def _expire(self) -> None:
        await self._write(False, by="automatic", reason="expired", only_if_expired=True)

    async def _write(self, on: bool, *, by: str, reason: str | None, duration: int | None = None,
                     only_if_off: bool = False, only_if_expired: bool = False) -> bool:
        """One locked transaction, so of several instances tripping or expiring it at once only one writes."""
        now = self._clock.now()
        reason = (reason or "")[:300] or None
        async with self._sessions.begin() as session:
            row = await session.get(ServerFlag, self.FLAG, with_for_update=True)
            current = dict(row.value) if row is not None else {}
            until = current.get("until")
            in_force = bool(current.get("on")) and (until is None or datetime.fromisoformat(until) > now)
            if (only_if_off and in_force) or (only_if_expired and (in_force or not current.get("on"))):
                return False
            value: dict[str, object] = {"on": on, "by": by[:100], "reason": reason, "automatic": by == "automatic"}
            if on:
                value["until"] = (now + timedelta(seconds=duration or self._duration)).isoformat()
            if row is None:
                session.add(ServerFlag(name=self.FLAG, value=value, updated_at=now))
            else:
                row.value = value
                row.updated_at = now
        self._remember(on)
        details: dict[str, object] = {"actor": by[:100], "reason": reason}
        if on:
            details["until"] = value["until"]
        if only_if_expired:
            details["was"] = {"by": current.get("by"), "reason": current.get("reason"), "until": until}
        await self._events.record("emergency", "on" if on else "off", **details)
        return True


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
        if spec.anonymous:
            await self.note_failure()
        await self._report(scope, key, decision, ip=ip, client_id=client_id, account_id=account_id, user_agent=user_agent)
        error = TooManyRequests()
        error.headers.update(decision.headers())
        raise error

    async def note_failure(self) -> None:
        """Count one failed sign-in or refused anonymous request towards the automatic emergency trigger.

        The count is shared by every instance (the limiter's Redis window, key ``emergency:failures``):
        ``abuse.emergency_trigger_failures`` of them within ``abuse.emergency_trigger_window`` seconds
        switch emergency mode on for ``abuse.emergency_duration``. Machine traffic is never counted.
        """
        threshold = self._settings.emergency_trigger_failures
        if threshold <= 0:
            return
        window = float(self._settings.emergency_trigger_window)
        try:
            decision = await self.limiter.hit(TRIGGER_KEY, limit=threshold, window=window, now=self._clock.now().timestamp())
            if (decision.allowed and decision.remaining > 0) or await self.emergency.is_on():
                return
            reason = f"automatic: {threshold} failed sign-ins or refused anonymous requests within {int(window)} s"
            if await self.emergency.trip(reason):
                log.warning("emergency mode switched on: %s", reason)
        except Exception:  # noqa: BLE001 - the trigger must never turn a refused sign-in into an error
            log.exception("could not evaluate the automatic emergency trigger")

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
