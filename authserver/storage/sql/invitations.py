"""Invitation codes for sign-up, made by an operator (CLI, admin API) and stored as SHA-256 digests.

A code has a use count and an expiry. A sign-up claims one use with one conditional
``UPDATE … SET uses = uses + 1 WHERE uses < max_uses AND expires_at > now AND revoked_at IS NULL``, so
parallel sign-ups can never use a code more often than allowed; a sign-up that then fails (the username
was taken in the meantime) gives its use back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.clock import Clock
from authserver.storage.sql.models import Invitation
from authserver.tokens.opaque import INVITATION_PREFIX, digest, new_id, new_secret

MAX_CODE_CHARS = 128


@dataclass(frozen=True)
class NewInvitation:
    invitation: Invitation
    code: str  # shown once


def plausible(code: str | None) -> bool:
    return bool(code) and len(code or "") <= MAX_CODE_CHARS and (code or "").startswith(INVITATION_PREFIX)


def describe(row: Invitation, now: datetime) -> dict[str, object]:
    """The public view of an invitation (never the code or its digest)."""
    if row.revoked_at is not None:
        state = "revoked"
    elif row.uses >= row.max_uses:
        state = "used"
    elif row.expires_at <= now:
        state = "expired"
    else:
        state = "active"
    return {
        "invitation_id": row.invitation_id, "state": state, "max_uses": row.max_uses, "uses": row.uses,
        "note": row.note, "created_by": row.created_by, "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat(), "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
    }


class SqlInvitationStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    async def create(self, *, ttl: int, max_uses: int = 1, note: str | None = None, created_by: str) -> NewInvitation:
        now = self._clock.now()
        code = new_secret(INVITATION_PREFIX)
        row = Invitation(
            invitation_id=new_id(12), code_digest=digest(code), max_uses=max_uses, uses=0, note=note,
            created_by=created_by, created_at=now, expires_at=now + timedelta(seconds=ttl),
        )
        async with self._sessions.begin() as session:
            session.add(row)
        return NewInvitation(row, code)

    async def get(self, invitation_id: str) -> Invitation | None:
        async with self._sessions() as session:
            return await session.get(Invitation, invitation_id)

    async def list(self, *, limit: int = 100, offset: int = 0) -> Sequence[Invitation]:
        async with self._sessions() as session:
            return (
                await session.scalars(select(Invitation).order_by(Invitation.created_at.desc()).limit(limit).offset(offset))
            ).all()

    async def usable(self, code: str | None) -> bool:
        """Whether the code would be accepted now (to answer the form before any write)."""
        if not plausible(code):
            return False
        async with self._sessions() as session:
            row = await session.scalar(select(Invitation).where(Invitation.code_digest == digest(code or "")))
        return row is not None and row.revoked_at is None and row.uses < row.max_uses and row.expires_at > self._clock.now()

    async def claim(self, code: str | None) -> str | None:
        """Use the code once; its invitation id, or None when unknown, used up, expired or revoked."""
        if not plausible(code):
            return None
        async with self._sessions.begin() as session:
            row = (
                await session.execute(
                    update(Invitation)
                    .where(
                        Invitation.code_digest == digest(code or ""), Invitation.uses < Invitation.max_uses,
                        Invitation.expires_at > self._clock.now(), Invitation.revoked_at.is_(None),
                    )
                    .values(uses=Invitation.uses + 1)
                    .returning(Invitation.invitation_id)
                )
            ).first()
        return str(row[0]) if row else None

    async def release(self, invitation_id: str) -> None:
        """Give back a use whose sign-up did not complete."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(Invitation).where(Invitation.invitation_id == invitation_id, Invitation.uses > 0)
                .values(uses=Invitation.uses - 1)
            )

    async def revoke(self, invitation_id: str) -> Invitation | None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(Invitation).where(Invitation.invitation_id == invitation_id, Invitation.revoked_at.is_(None))
                .values(revoked_at=self._clock.now())
            )
        return await self.get(invitation_id)
