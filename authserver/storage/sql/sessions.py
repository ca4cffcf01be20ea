"""Browser sessions (server side, keyed by the digest of an opaque cookie) and remembered consents."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.clock import Clock
from authserver.storage.sql.models import BrowserSession, Consent
from authserver.tokens.opaque import SESSION_PREFIX, digest, new_secret


class SqlSessionStore:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], clock: Clock, *, ttl: int, idle_ttl: int
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._ttl = ttl
        self._idle_ttl = idle_ttl

    async def create(
        self,
        account_id: str,
        *,
        auth_time: datetime,
        amr: list[str],
        acr: str | None = None,
        user_agent: str | None = None,
        ip: str | None = None,
        replaces: str | None = None,
    ) -> tuple[str, BrowserSession]:
        """A new session (new id on every sign-in: no fixation); returns the cookie value and the row."""
        now = self._clock.now()
        cookie = new_secret(SESSION_PREFIX)
        row = BrowserSession(
            session_digest=digest(cookie),
            account_id=account_id,
            auth_time=auth_time,
            amr=amr,
            acr=acr,
            user_agent=(user_agent or "")[:300] or None,
            ip=ip,
            created_at=now,
            last_seen_at=now,
            expires_at=now + timedelta(seconds=self._ttl),
        )
        async with self._sessions.begin() as session:
            if replaces:
                await session.execute(
                    update(BrowserSession)
                    .where(BrowserSession.session_digest == digest(replaces), BrowserSession.ended_at.is_(None))
                    .values(ended_at=now)
                )
            session.add(row)
        return cookie, row

    async def get(self, cookie: str | None) -> BrowserSession | None:
        """The live session for a cookie value, or None (unknown, ended, expired or idle too long)."""
        if not cookie or len(cookie) > 128:
            return None
        now = self._clock.now()
        async with self._sessions() as session:
            row = await session.get(BrowserSession, digest(cookie))
        if row is None or row.ended_at is not None or row.expires_at <= now:
            return None
        if row.last_seen_at + timedelta(seconds=self._idle_ttl) <= now:
            return None
        if (now - row.last_seen_at).total_seconds() > 60:
            async with self._sessions.begin() as session:
                await session.execute(
                    update(BrowserSession).where(BrowserSession.session_digest == row.session_digest).values(last_seen_at=now)
                )
        return row

    async def end(self, cookie: str) -> None:
        async with self._sessions.begin() as session:
            await session.execute(
                update(BrowserSession)
                .where(BrowserSession.session_digest == digest(cookie), BrowserSession.ended_at.is_(None))
                .values(ended_at=self._clock.now())
            )

    async def list_for_account(self, account_id: str) -> Sequence[BrowserSession]:
        now = self._clock.now()
        async with self._sessions() as session:
            return (
                await session.scalars(
                    select(BrowserSession).where(
                        BrowserSession.account_id == account_id,
                        BrowserSession.ended_at.is_(None),
                        BrowserSession.expires_at > now,
                    )
                )
            ).all()


class SqlConsentStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    async def granted_scopes(self, account_id: str, client_id: str) -> set[str]:
        async with self._sessions() as session:
            row = await session.get(Consent, (account_id, client_id))
        return set(row.scopes) if row else set()

    async def grant(self, account_id: str, client_id: str, scopes: set[str]) -> None:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            row = await session.get(Consent, (account_id, client_id), with_for_update=True)
            if row is None:
                session.add(Consent(account_id=account_id, client_id=client_id, scopes=sorted(scopes), created_at=now, updated_at=now))
            else:
                row.scopes = sorted(set(row.scopes) | scopes)
                row.updated_at = now

    async def list_for_account(self, account_id: str) -> Sequence[Consent]:
        async with self._sessions() as session:
            return (await session.scalars(select(Consent).where(Consent.account_id == account_id).order_by(Consent.created_at))).all()

    async def withdraw(self, account_id: str, client_id: str) -> bool:
        """Forget the person's consent for the client; True if there was one."""
        async with self._sessions.begin() as session:
            result = await session.execute(delete(Consent).where(Consent.account_id == account_id, Consent.client_id == client_id))
        return bool(result.rowcount)  # type: ignore[attr-defined]
