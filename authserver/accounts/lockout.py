"""Brute-force locks (RFC 6749 §10.10, RFC 6819 §4.4.3.6, NIST SP 800-63B §5.2.2, ASVS 5 §6.3).

Failures are counted per key in PostgreSQL/SQLite (table ``login_throttles``), not in Redis: the verdict
"locked until T" must survive a Redis restart, flush or outage (SPEC R-04, R-06), and every instance
sees the same count (R-12: 5 failures over several instances lock the account). A failure is one
short transaction (insert-if-absent, then ``SELECT … FOR UPDATE`` and update), which costs far less
than the argon2 hash that produced it.

Counting: a fixed window opens at the first failure; ``threshold`` failures inside it lock the key
for ``base`` seconds, doubled for each further lock up to ``maximum``. The escalation is forgotten
after ``reset_after`` seconds without failures, on a successful sign-in, or by an administrator.

Client authentication (every token, introspection and revocation request) does not read the table:
:meth:`Lockout.client_locked_for` answers from :class:`LockView`, this instance's copy of the live
client locks, reloaded at most every ``view_seconds``. Client secrets are 256-bit random values, so the
lock only stops floods, not guessing; a lock set on another instance applies here within
``view_seconds``, one set on this instance at once. Password and second-factor locks are always read
from the table.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.clock import Clock
from authserver.storage.sql.accounts import normalise_username
from authserver.storage.sql.lifecycle import Batches
from authserver.storage.sql.models import LoginThrottle

log = logging.getLogger("authserver.lockout")

CLIENT_PREFIXES = ("client:", "cip:")


def account_key(username: str) -> str:
    """Keyed by the normalised username, known or not, so a lock never tells whether the account exists."""
    return "acct:" + hashlib.sha256(normalise_username(username).encode("utf-8")).hexdigest()[:40]


def ip_key(ip: str) -> str:
    return f"ip:{ip}"


def mfa_key(account_id: str) -> str:
    """Second-factor guesses (TOTP, backup codes) of one account: use with ``RateLimits.account_policy()``."""
    return f"mfa:{account_id}"


def client_key(client_id: str, ip: str) -> str:
    """Per client id *and* address: nobody elsewhere can lock a CMIPRO service out by failing as it."""
    return f"client:{client_id[:100]}|{ip}"


def client_ip_key(ip: str) -> str:
    return f"cip:{ip}"


@dataclass(frozen=True)
class Policy:
    threshold: int
    window: int
    base: int
    maximum: int


@dataclass(frozen=True)
class Failure:
    failures: int
    # Seconds the key is now locked for (0: this failure did not lock it).
    locked_for: int


def _seconds_left(latest: datetime | None, now: datetime) -> int:
    return 0 if latest is None else max(1, int((latest - now).total_seconds() + 0.999))


class LockView:
    """This instance's copy of the live client-authentication locks (key -> locked until).

    Reloaded from the table when older than ``max_age`` seconds, by one caller at a time while the
    others use the copy they have. If the table cannot be read, the last copy stays in use and the
    reload is retried after ``max_age``: the locks it guards protect unguessable secrets (fail open,
    docs/reliability.md).
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, *, max_age: float,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._max_age = max_age
        self._monotonic = clock.monotonic
        self._locks: dict[str, datetime] = {}
        self._loaded_at: float | None = None
        self._reloading: asyncio.Lock | None = None

    async def latest(self, keys: list[str]) -> datetime | None:
        if self._loaded_at is None or self._monotonic() - self._loaded_at >= self._max_age:
            await self._reload()
        return max((self._locks[k] for k in keys if k in self._locks), default=None)

    def note(self, key: str, until: datetime | None) -> None:
        """A lock set (``until``) or cleared (None) by this instance: seen here at once."""
        if until is None:
            self._locks.pop(key, None)
        elif key.startswith(CLIENT_PREFIXES):
            self._locks[key] = until

    async def _reload(self) -> None:
        if self._reloading is None:
            self._reloading = asyncio.Lock()
        if self._reloading.locked() and self._loaded_at is not None:
            return  # someone else is reloading; answer from the current copy
        async with self._reloading:
            if self._loaded_at is not None and self._monotonic() - self._loaded_at < self._max_age:
                return
            now = self._clock.now()
            try:
                async with self._sessions() as session:
                    rows = await session.execute(
                        select(LoginThrottle.key, LoginThrottle.locked_until).where(
                            LoginThrottle.locked_until > now, or_(*(LoginThrottle.key.startswith(p) for p in CLIENT_PREFIXES))
                        )
                    )
                    self._locks = {key: until for key, until in rows if until is not None}
            except Exception:
                if self._loaded_at is None:
                    raise  # nothing to answer from yet: the caller's error handling decides (503)
                log.warning("could not reload client-authentication locks; using the copy from %.0f s ago",
                            self._monotonic() - self._loaded_at, exc_info=True)
            self._loaded_at = self._monotonic()


class Lockout:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, *, reset_after: int, view_seconds: float = 1.0
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._reset_after = timedelta(seconds=reset_after)
        self.view = LockView(sessions, clock, max_age=view_seconds)

    async def locked_for(self, keys: list[str]) -> int:
        """Seconds until the last of ``keys`` is unlocked; 0 when none is locked."""
        now = self._clock.now()
        async with self._sessions() as session:
            until = await session.scalars(
                select(LoginThrottle.locked_until).where(LoginThrottle.key.in_(keys), LoginThrottle.locked_until > now)
            )
            latest = max((u for u in until if u is not None), default=None)
        return _seconds_left(latest, now)

    async def client_locked_for(self, keys: list[str]) -> int:
        """:meth:`locked_for` for client-authentication keys, answered from this instance's :class:`LockView`."""
        now = self._clock.now()
        latest = await self.view.latest(keys)
        return _seconds_left(latest if latest is not None and latest > now else None, now)

    async def failure(self, key: str, policy: Policy) -> Failure:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            await session.execute(self._insert_absent(session, key, now))
            row = (await session.scalars(select(LoginThrottle).where(LoginThrottle.key == key).with_for_update())).one()
            if row.locked_until is not None and row.locked_until > now:
                self.view.note(key, row.locked_until)  # locked by another instance: known here from now on
            if now - row.updated_at > self._reset_after:
                row.lock_count = 0
            if now - row.window_started_at >= timedelta(seconds=policy.window) or row.failures == 0:
                row.failures = 0
                row.window_started_at = now
            row.failures += 1
            row.updated_at = now
            locked_for = 0
            if row.failures >= policy.threshold:
                locked_for = min(policy.maximum, policy.base * 2 ** min(row.lock_count, 30))
                row.locked_until = now + timedelta(seconds=locked_for)
                row.lock_count += 1
                row.failures = 0
                row.window_started_at = now
                self.view.note(key, row.locked_until)
            return Failure(row.failures if not locked_for else policy.threshold, locked_for)

    async def clear(self, key: str) -> bool:
        """Forget failures, lock and escalation for ``key`` (successful sign-in, administrator unlock)."""
        async with self._sessions.begin() as session:
            result = await session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))
        self.view.note(key, None)
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def purge(self, *, older_than: timedelta, batch_size: int = 500, pause: float = 0.0) -> int:
        """Drop rows untouched for ``older_than`` whose lock has ended, in batches (the scheduled purge)."""
        now = self._clock.now()
        condition = and_(
            LoginThrottle.updated_at < now - older_than,
            or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < now),
        )
        return await Batches(self._sessions, batch_size=batch_size, pause=pause).delete(LoginThrottle.key, condition)

    @staticmethod
    def _insert_absent(session: AsyncSession, key: str, now: datetime):  # type: ignore[no-untyped-def]
        values = {"key": key, "failures": 0, "window_started_at": now, "lock_count": 0, "updated_at": now}
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        return insert(LoginThrottle).values(**values).on_conflict_do_nothing(index_elements=["key"])
