"""Brute-force locks (RFC 6749 §10.10, RFC 6819 §4.4.3.6, NIST SP 800-63B §5.2.2, ASVS 5 §6.3).

Failures are counted per key in PostgreSQL/SQLite (table ``login_throttles``), not in Redis: the verdict
"locked until T" must survive a Redis restart, flush or outage (SPEC R-04, R-06), and every instance
sees the same count (R-12: 5 failures over several instances lock the account). A failure is one
short transaction (insert-if-absent, then ``SELECT … FOR UPDATE`` and update), which costs far less
than the argon2 hash that produced it.

Counting: a fixed window opens at the first failure; ``threshold`` failures inside it lock the key
for ``base`` seconds, doubled for each further lock up to ``maximum``. The escalation is forgotten
after ``reset_after`` seconds without failures, on a successful sign-in, or by an administrator.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.clock import Clock
from authserver.storage.sql.accounts import normalise_username
from authserver.storage.sql.models import LoginThrottle


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


class Lockout:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, *, reset_after: int) -> None:
        self._sessions = sessions
        self._clock = clock
        self._reset_after = timedelta(seconds=reset_after)

    async def locked_for(self, keys: list[str]) -> int:
        """Seconds until the last of ``keys`` is unlocked; 0 when none is locked."""
        now = self._clock.now()
        async with self._sessions() as session:
            until = await session.scalars(
                select(LoginThrottle.locked_until).where(LoginThrottle.key.in_(keys), LoginThrottle.locked_until > now)
            )
            latest = max((u for u in until if u is not None), default=None)
        return 0 if latest is None else max(1, int((latest - now).total_seconds() + 0.999))

    async def failure(self, key: str, policy: Policy) -> Failure:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            await session.execute(self._insert_absent(session, key, now))
            row = (await session.scalars(select(LoginThrottle).where(LoginThrottle.key == key).with_for_update())).one()
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
            return Failure(row.failures if not locked_for else policy.threshold, locked_for)

    async def clear(self, key: str) -> bool:
        """Forget failures, lock and escalation for ``key`` (successful sign-in, administrator unlock)."""
        async with self._sessions.begin() as session:
            result = await session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def purge(self, *, older_than: timedelta) -> int:
        """Drop rows untouched for ``older_than`` whose lock has ended (housekeeping)."""
        cutoff = self._clock.now() - older_than
        now = self._clock.now()
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(LoginThrottle).where(
                    LoginThrottle.updated_at < cutoff,
                    (LoginThrottle.locked_until.is_(None)) | (LoginThrottle.locked_until < now),
                )
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    @staticmethod
    def _insert_absent(session: AsyncSession, key: str, now: datetime):  # type: ignore[no-untyped-def]
        values = {"key": key, "failures": 0, "window_started_at": now, "lock_count": 0, "updated_at": now}
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        return insert(LoginThrottle).values(**values).on_conflict_do_nothing(index_elements=["key"])
