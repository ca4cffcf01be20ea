"""Second-factor state: TOTP enrolment, the last accepted step, the failure window and lock, backup codes.

Every check-and-act is one conditional UPDATE, so it holds across processes and instances:
- a TOTP step is claimed with ``… WHERE totp_last_step IS NULL OR totp_last_step < :step`` (replay);
- a backup code with ``… WHERE used_at IS NULL`` (single use);
- each attempt is numbered (and refused once locked) by one UPDATE … RETURNING on the account row,
  *before* the code is checked, so parallel guesses cannot all slip in before the first failure lands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, case, delete, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.clock import Clock
from authserver.storage.sql.models import Account, BackupCode, UTCDateTime


@dataclass(frozen=True)
class Attempt:
    """A reserved second-factor attempt: its number in the window, or the lock that refused it."""

    number: int
    locked_until: datetime | None

    @property
    def allowed(self) -> bool:
        return self.locked_until is None


class SqlMfaStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    # --- TOTP ------------------------------------------------------------------------------------

    async def set_pending_secret(self, account_id: str, encrypted: str) -> bool:
        """Store a not-yet-confirmed secret; refused (False) while TOTP is enabled."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(Account)
                .where(Account.account_id == account_id, Account.totp_enabled_at.is_(None))
                .values(totp_secret_encrypted=encrypted, totp_last_step=None, updated_at=self._clock.now())
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def enable(self, account_id: str, *, encrypted: str, step: int, backup_code_hashes: list[str]) -> bool:
        """Confirm the pending secret (exactly the one shown), claim the confirming step, store backup codes."""
        now = self._clock.now()
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(Account)
                .where(
                    Account.account_id == account_id,
                    Account.totp_enabled_at.is_(None),
                    Account.totp_secret_encrypted == encrypted,
                )
                .values(
                    totp_enabled_at=now, totp_last_step=step, mfa_failed_attempts=0,
                    mfa_failures_since=None, mfa_locked_until=None, updated_at=now,
                )
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                return False
            await self._replace_backup_codes(session, account_id, backup_code_hashes, now)
        return True

    async def disable(self, account_id: str) -> None:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            await session.execute(
                update(Account)
                .where(Account.account_id == account_id)
                .values(
                    totp_secret_encrypted=None, totp_enabled_at=None, totp_last_step=None, mfa_failed_attempts=0,
                    mfa_failures_since=None, mfa_locked_until=None, updated_at=now,
                )
            )
            await session.execute(delete(BackupCode).where(BackupCode.account_id == account_id))

    async def reencrypt_secret(self, account_id: str, *, old: str, new: str) -> None:
        """After a key rotation: store the secret under the active key (only if it did not change meanwhile)."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(Account)
                .where(Account.account_id == account_id, Account.totp_secret_encrypted == old)
                .values(totp_secret_encrypted=new)
            )

    async def claim_totp_step(self, account_id: str, step: int) -> bool:
        """Accept a code of ``step`` once: False if this step or a later one was already used."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(Account)
                .where(
                    Account.account_id == account_id,
                    Account.totp_enabled_at.is_not(None),
                    or_(Account.totp_last_step.is_(None), Account.totp_last_step < step),
                )
                .values(totp_last_step=step)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # --- attempts and the lock -----------------------------------------------------------------------

    async def begin_attempt(self, account_id: str, *, window: int, max_failures: int, lockout: int) -> Attempt:
        """Reserve one attempt before any code is checked (so parallel requests cannot outrun the count).

        One UPDATE … RETURNING numbers the attempts of the current window; past ``max_failures`` (only
        reachable by parallel requests) the attempt is refused and the lock set. A locked account gets no number.
        """
        now = self._clock.now()
        now_value = literal(now, type_=UTCDateTime())
        unlocked = or_(Account.mfa_locked_until.is_(None), Account.mfa_locked_until <= now_value)
        fresh_window = or_(
            Account.mfa_failures_since.is_(None),
            Account.mfa_failures_since <= literal(now - timedelta(seconds=window), type_=UTCDateTime()),
        )
        async with self._sessions.begin() as session:
            number = await session.scalar(
                update(Account)
                .where(Account.account_id == account_id, unlocked)
                .values(
                    mfa_failed_attempts=case((fresh_window, 1), else_=Account.mfa_failed_attempts + 1),
                    mfa_failures_since=case((fresh_window, now_value), else_=Account.mfa_failures_since),
                )
                .returning(Account.mfa_failed_attempts)
            )
        if number is None:
            return Attempt(0, await self.locked_until(account_id))
        if int(number) > max_failures:
            return Attempt(int(number), await self._lock(account_id, lockout))
        return Attempt(int(number), None)

    async def fail_attempt(self, account_id: str, attempt: Attempt, *, max_failures: int, lockout: int) -> datetime | None:
        """The reserved attempt failed; the ``max_failures``-th sets the lock (returns its end)."""
        if attempt.number >= max_failures:
            return await self._lock(account_id, lockout)
        return None

    async def _lock(self, account_id: str, lockout: int) -> datetime | None:
        now = self._clock.now()
        until = now + timedelta(seconds=lockout)
        now_value = literal(now, type_=UTCDateTime())
        async with self._sessions.begin() as session:
            # The lock starts a new window: after it ends, the full allowance returns.
            await session.execute(
                update(Account)
                .where(
                    Account.account_id == account_id,
                    or_(Account.mfa_locked_until.is_(None), Account.mfa_locked_until <= now_value),
                )
                .values(mfa_locked_until=until, mfa_failed_attempts=0, mfa_failures_since=None)
            )
        return await self.locked_until(account_id)

    async def locked_until(self, account_id: str) -> datetime | None:
        """The end of a lock still in force, or None."""
        async with self._sessions() as session:
            until = await session.scalar(select(Account.mfa_locked_until).where(Account.account_id == account_id))
        until = _aware(until)
        return until if until is not None and until > self._clock.now() else None

    async def clear_failures(self, account_id: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(Account).where(Account.account_id == account_id).values(mfa_failed_attempts=0, mfa_failures_since=None)
            )

    # --- backup codes ----------------------------------------------------------------------------------

    async def unused_backup_codes(self, account_id: str) -> Sequence[BackupCode]:
        async with self._sessions() as session:
            return (
                await session.scalars(
                    select(BackupCode).where(BackupCode.account_id == account_id, BackupCode.used_at.is_(None))
                )
            ).all()

    async def count_unused_backup_codes(self, account_id: str) -> int:
        async with self._sessions() as session:
            value = await session.scalar(
                select(func.count()).select_from(BackupCode).where(
                    and_(BackupCode.account_id == account_id, BackupCode.used_at.is_(None))
                )
            )
        return int(value or 0)

    async def use_backup_code(self, code_id: int) -> bool:
        """Mark one code used; False if it was already used (a parallel request won)."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(BackupCode)
                .where(BackupCode.id == code_id, BackupCode.used_at.is_(None))
                .values(used_at=self._clock.now())
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def replace_backup_codes(self, account_id: str, hashes: list[str]) -> None:
        async with self._sessions.begin() as session:
            await self._replace_backup_codes(session, account_id, hashes, self._clock.now())

    @staticmethod
    async def _replace_backup_codes(session: AsyncSession, account_id: str, hashes: list[str], now: datetime) -> None:
        await session.execute(delete(BackupCode).where(BackupCode.account_id == account_id))
        session.add_all(BackupCode(account_id=account_id, code_hash=h, created_at=now) for h in hashes)


def _aware(value: datetime | None) -> datetime | None:
    """RETURNING and scalar() on SQLite may bypass the column type: re-attach UTC if needed."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
