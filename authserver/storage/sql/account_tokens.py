"""Single-use links sent by mail (password reset, e-mail verification) and the one-step MFA recovery
value, stored as SHA-256 digests.

A link is claimed with one conditional ``UPDATE … WHERE used_at IS NULL AND expires_at > now RETURNING``,
so two parallel uses cannot both win. Issuing a new link of a purpose retires the person's older unused
ones, so only the latest mail works.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.clock import Clock
from authserver.storage.sql.models import AccountToken
from authserver.tokens.opaque import RECOVER_PREFIX, RESET_PREFIX, VERIFY_PREFIX, digest, new_secret

PREFIXES = {"reset": RESET_PREFIX, "verify": VERIFY_PREFIX, "recover": RECOVER_PREFIX}
MAX_TOKEN_CHARS = 128


@dataclass(frozen=True)
class ClaimedToken:
    account_id: str
    email: str | None


def _plausible(value: str | None, purpose: str) -> bool:
    return bool(value) and len(value or "") <= MAX_TOKEN_CHARS and (value or "").startswith(PREFIXES[purpose])


class SqlAccountTokenStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    async def issue(self, account_id: str, purpose: str, *, ttl: int, email: str | None = None) -> str:
        """A new link value for the person (returned once, stored as its digest); older unused ones stop working."""
        now = self._clock.now()
        value = new_secret(PREFIXES[purpose])
        async with self._sessions.begin() as session:
            await session.execute(
                update(AccountToken)
                .where(AccountToken.account_id == account_id, AccountToken.purpose == purpose, AccountToken.used_at.is_(None))
                .values(used_at=now)
            )
            session.add(AccountToken(
                token_digest=digest(value), account_id=account_id, purpose=purpose, email=email,
                created_at=now, expires_at=now + timedelta(seconds=ttl),
            ))
        return value

    async def peek(self, value: str | None, purpose: str) -> ClaimedToken | None:
        """The live link's owner without using it (to show the form; mail scanners follow links)."""
        if not _plausible(value, purpose):
            return None
        async with self._sessions() as session:
            row = await session.get(AccountToken, digest(value or ""))
        if row is None or row.purpose != purpose or row.used_at is not None or row.expires_at <= self._clock.now():
            return None
        return ClaimedToken(row.account_id, row.email)

    async def claim(self, value: str | None, purpose: str) -> ClaimedToken | None:
        """Use the link: exactly one caller gets its owner; unknown, used, expired or other-purpose: None."""
        if not _plausible(value, purpose):
            return None
        now = self._clock.now()
        async with self._sessions.begin() as session:
            row = (
                await session.execute(
                    update(AccountToken)
                    .where(
                        AccountToken.token_digest == digest(value or ""), AccountToken.purpose == purpose,
                        AccountToken.used_at.is_(None), AccountToken.expires_at > now,
                    )
                    .values(used_at=now)
                    .returning(AccountToken.account_id, AccountToken.email)
                )
            ).first()
        return ClaimedToken(row[0], row[1]) if row else None

    async def retire(self, account_id: str, purpose: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(AccountToken)
                .where(AccountToken.account_id == account_id, AccountToken.purpose == purpose, AccountToken.used_at.is_(None))
                .values(used_at=self._clock.now())
            )

    async def count_live(self, account_id: str, purpose: str) -> int:
        now = self._clock.now()
        async with self._sessions() as session:
            rows = await session.scalars(
                select(AccountToken.token_digest).where(
                    AccountToken.account_id == account_id, AccountToken.purpose == purpose,
                    AccountToken.used_at.is_(None), AccountToken.expires_at > now,
                )
            )
            return len(rows.all())

