"""SQL side of the token lifecycle: the durable deny list, family and session revocation, account
erasure, and the batched purge of expired rows (RFC 7009 §2.1, RFC 6749 §10.4, RFC 9700 §4.14.2).

Every multi-row write is one short transaction. The purge deletes at most ``batch_size`` rows per
statement, choosing them in a subquery (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so it never waits on a
row a token request holds), and pauses ``pause`` seconds between batches, so locks on the hot tables stay
short and other writers get the database in between (SQLite has one writer at a time).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.clock import Clock
from authserver.storage.sql.models import (
    Account,
    AccountToken,
    AuthorizationCode,
    BrowserSession,
    Client,
    DenyListEntry,
    Grant,
    RefreshToken,
    SecurityEvent,
)

OFFLINE_SCOPE = "offline_access"


@dataclass(frozen=True)
class DenyEntry:
    entry: str
    # "inf": every token the entry matches; otherwise epoch seconds: tokens with ``iat`` before it.
    not_before: str
    expires_at: datetime


@dataclass
class PurgeReport:
    codes: int = 0
    refresh_tokens: int = 0
    grants: int = 0
    sessions: int = 0
    deny_list: int = 0
    account_tokens: int = 0
    throttles: int = 0
    events: int = 0
    # Events whose IP address and user agent were dropped (the rows stay).
    events_scrubbed: int = 0

    def total(self) -> int:
        """Rows deleted (scrubbed events are not deleted)."""
        return (
            self.codes + self.refresh_tokens + self.grants + self.sessions + self.deny_list + self.account_tokens
            + self.throttles + self.events
        )

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class SqlLifecycleStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    # --- deny list ---------------------------------------------------------------------------------

    async def add_deny_entries(self, entries: Sequence[DenyEntry]) -> None:
        """Insert or replace entries (a later ``not_before`` and expiry win)."""
        if not entries:
            return
        now = self._clock.now()
        rows = [
            {"entry": e.entry, "not_before": e.not_before, "created_at": now, "expires_at": e.expires_at}
            for e in entries
        ]
        async with self._sessions.begin() as session:
            insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
            statement = insert(DenyListEntry).values(rows)
            statement = statement.on_conflict_do_update(
                index_elements=[DenyListEntry.entry],
                set_={"not_before": statement.excluded.not_before, "expires_at": statement.excluded.expires_at},
            )
            await session.execute(statement)

    async def live_deny_entries(self) -> list[DenyEntry]:
        now = self._clock.now()
        async with self._sessions() as session:
            rows = (await session.scalars(select(DenyListEntry).where(DenyListEntry.expires_at > now))).all()
        return [DenyEntry(r.entry, r.not_before, r.expires_at) for r in rows]

    async def find_deny_entries(self, entries: Sequence[str]) -> dict[str, str]:
        """The live entries among ``entries``: entry → not_before (the fallback when the cache is down)."""
        now = self._clock.now()
        async with self._sessions() as session:
            rows = await session.execute(
                select(DenyListEntry.entry, DenyListEntry.not_before).where(
                    DenyListEntry.entry.in_(list(entries)), DenyListEntry.expires_at > now
                )
            )
            return {entry: not_before for entry, not_before in rows.all()}

    async def longest_access_token_ttl(self, default: int) -> int:
        """The longest access-token lifetime in force: how long a revoked family's tokens may still circulate."""
        async with self._sessions() as session:
            longest = await session.scalar(select(func.max(Client.access_token_ttl)))
        return max(default, int(longest or 0))

    # --- families and sessions -------------------------------------------------------------------

    async def live_grant_ids(
        self, *, account_id: str, session_digest: str | None = None, session_bound_only: bool = False,
        client_id: str | None = None,
    ) -> list[str]:
        """Unrevoked grants of a person (or of one browser session, or to one client). ``session_bound_only``
        leaves out grants with offline_access, which outlive the session that created them."""
        conditions: list[Any] = [Grant.account_id == account_id, Grant.revoked_at.is_(None)]
        if session_digest is not None:
            conditions.append(Grant.session_digest == session_digest)
        if client_id is not None:
            conditions.append(Grant.client_id == client_id)
        async with self._sessions() as session:
            rows = (await session.execute(select(Grant.grant_id, Grant.scopes).where(*conditions))).all()
        return [gid for gid, scopes in rows if not (session_bound_only and OFFLINE_SCOPE in (scopes or []))]

    async def get_session(self, session_digest: str) -> BrowserSession | None:
        async with self._sessions() as session:
            return await session.get(BrowserSession, session_digest)

    async def end_sessions(self, account_id: str, *, session_digest: str | None = None, keep: str | None = None) -> list[str]:
        """End one of a person's sessions (or all, or all but ``keep``); returns the digests of the sessions ended."""
        conditions: list[Any] = [BrowserSession.account_id == account_id, BrowserSession.ended_at.is_(None)]
        if session_digest is not None:
            conditions.append(BrowserSession.session_digest == session_digest)
        if keep is not None:
            conditions.append(BrowserSession.session_digest != keep)
        async with self._sessions.begin() as session:
            ended = await session.scalars(
                update(BrowserSession).where(*conditions).values(ended_at=self._clock.now()).returning(BrowserSession.session_digest)
            )
            return list(ended.all())

    # --- accounts --------------------------------------------------------------------------------

    async def erase_account(self, account_id: str, *, pseudonym: str) -> bool:
        """GDPR erasure: the account row goes, and with it (ON DELETE CASCADE) its credentials, backup codes,
        sessions, consents, codes, grants and refresh tokens. Security events keep ``pseudonym`` instead
        of the account id. One transaction; False if there was no such account."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(SecurityEvent).where(SecurityEvent.account_id == account_id).values(account_id=pseudonym)
            )
            # Explicit deletes first: SQLite enforces the cascades only with foreign_keys=ON, which the
            # engine sets, but a connection opened elsewhere (alembic, sqlite3 shell) may not.
            await session.execute(delete(RefreshToken).where(RefreshToken.grant_id.in_(select(Grant.grant_id).where(Grant.account_id == account_id))))
            await session.execute(delete(Grant).where(Grant.account_id == account_id))
            await session.execute(delete(AuthorizationCode).where(AuthorizationCode.account_id == account_id))
            await session.execute(delete(BrowserSession).where(BrowserSession.account_id == account_id))
            await session.execute(delete(AccountToken).where(AccountToken.account_id == account_id))
            result = await session.execute(delete(Account).where(Account.account_id == account_id))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    # --- purge -----------------------------------------------------------------------------------

    async def purge(
        self, *, retention: int, batch_size: int, max_batches: int = 1000, pause: float = 0.0,
        event_retention: int | None = None, event_personal_data_retention: int | None = None,
    ) -> PurgeReport:
        """Delete what can no longer matter, ``batch_size`` rows per transaction, ``pause`` s between batches.

        Codes, refresh tokens and sessions ``retention`` seconds after they expire (consumed rows stay
        that long so reuse is still detected); grants ``retention`` after their absolute expiry or their
        revocation; deny-list entries as soon as every token they can match has expired. Security events
        ``event_retention`` seconds after they happened; their IP address and user agent already after
        ``event_personal_data_retention`` (None: keep them).
        """
        now = self._clock.now()
        cutoff = now - timedelta(seconds=retention)
        batches = Batches(self._sessions, batch_size=batch_size, max_batches=max_batches, pause=pause)
        report = PurgeReport()
        report.deny_list = await batches.delete(DenyListEntry.entry, DenyListEntry.expires_at <= now)
        report.account_tokens = await batches.delete(AccountToken.token_digest, AccountToken.expires_at <= cutoff)
        report.codes = await batches.delete(AuthorizationCode.code_digest, AuthorizationCode.expires_at <= cutoff)
        report.refresh_tokens = await batches.delete(RefreshToken.token_digest, RefreshToken.expires_at <= cutoff)
        report.grants = await batches.delete(Grant.grant_id, or_(Grant.expires_at <= cutoff, Grant.revoked_at <= cutoff))
        report.sessions = await batches.delete(
            BrowserSession.session_digest, or_(BrowserSession.expires_at <= cutoff, BrowserSession.ended_at <= cutoff)
        )
        if event_retention is not None:
            report.events = await batches.delete(
                SecurityEvent.id, SecurityEvent.occurred_at < now - timedelta(seconds=event_retention)
            )
        if event_personal_data_retention is not None:
            report.events_scrubbed = await batches.update(
                SecurityEvent.id,
                and_(
                    SecurityEvent.occurred_at < now - timedelta(seconds=event_personal_data_retention),
                    or_(SecurityEvent.ip.is_not(None), SecurityEvent.user_agent.is_not(None)),
                ),
                {"ip": None, "user_agent": None},
            )
        return report


class Batches:
    """Deletes and updates of every row matching a condition, at most ``batch_size`` rows per transaction.

    Each batch picks its rows in a subquery by key (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: a row a
    request holds is left for the next run, never waited for), then commits; ``pause`` seconds pass
    between two batches. At most ``max_batches`` per call, so one run is bounded however large the backlog.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, batch_size: int, max_batches: int = 1000,
                 pause: float = 0.0) -> None:
        self._sessions = sessions
        self._batch_size = batch_size
        self._max_batches = max_batches
        self._pause = pause

    async def delete(self, key: Any, condition: Any) -> int:
        return await self._run(key, condition, None)

    async def update(self, key: Any, condition: Any, values: dict[str, Any]) -> int:
        """``condition`` must stop matching a row once ``values`` are set, or the same rows come back."""
        return await self._run(key, condition, values)

    async def _run(self, key: Any, condition: Any, values: dict[str, Any] | None) -> int:
        table = key.class_
        total = 0
        for batch in range(self._max_batches):
            if batch and self._pause:
                await asyncio.sleep(self._pause)
            async with self._sessions.begin() as session:
                chosen = select(key).where(condition).limit(self._batch_size)
                if session.get_bind().dialect.name == "postgresql":
                    chosen = chosen.with_for_update(skip_locked=True)
                if values is not None:
                    result = await session.execute(update(table).where(key.in_(chosen)).values(**values))
                    done = int(result.rowcount)  # type: ignore[attr-defined]
                elif table is Grant:
                    # Refresh tokens go with their grant (explicitly: see erase_account).
                    ids = list((await session.scalars(chosen)).all())
                    done = 0
                    if ids:
                        await session.execute(delete(RefreshToken).where(RefreshToken.grant_id.in_(ids)))
                        result = await session.execute(delete(Grant).where(Grant.grant_id.in_(ids)))
                        done = int(result.rowcount)  # type: ignore[attr-defined]
                else:
                    result = await session.execute(delete(table).where(key.in_(chosen)))
                    done = int(result.rowcount)  # type: ignore[attr-defined]
            total += done
            if done < self._batch_size:
                break
        return total
