"""Security events: who did what, when, from where, and how it ended — never a secret.

Each event is written at once as one JSON line to the ``authserver.security`` logger, and stored in the
``security_events`` table shortly after: rows wait in a per-instance buffer that a background flush writes
in batches (one multi-row INSERT at most ``FLUSH_DELAY`` seconds after the first pending row), so the
request that triggered the event never waits for the database. Reading the log (:meth:`query`, the admin
API) and erasing a person flush first, so this instance always reads its own events.

Storing is best effort: a database failure is logged, the rows stay buffered (up to ``MAX_PENDING``;
beyond that new ones are dropped and counted) and are written when the database answers again, and it
never turns the request that triggered the event into an error (the decision was already made).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.clock import Clock
from authserver.metrics import Metrics
from authserver.middleware.request_id import request_id_var
from authserver.storage.sql.models import SecurityEvent

log = logging.getLogger("authserver.security")


def configure_security_log() -> None:
    """Send security events to stdout as bare JSON lines, unless logging was already set up for them."""
    if log.handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)

# Events every token request records: stored and counted like the others, but logged only at DEBUG so a
# service fetching thousands of tokens does not turn the log into a copy of the table.
ROUTINE = frozenset({("token", "issued")})


class _JsonMessage:
    __slots__ = ("line",)

    def __init__(self, line: dict[str, Any]) -> None:
        self.line = line

    def __str__(self) -> str:
        return json.dumps(self.line, default=str)


# Keys that must never reach an event, whatever a caller passes.
_FORBIDDEN = {"password", "secret", "client_secret", "code", "token", "access_token", "refresh_token", "otp", "backup_code"}


# Seconds between the first pending event and its write; after a failed write, the wait before retrying.
FLUSH_DELAY = 0.1
RETRY_DELAY = 1.0
# Rows per INSERT, and most rows kept while the database is unreachable.
BATCH_SIZE = 500
MAX_PENDING = 20_000
# Longest wait at shutdown for the last rows to be written.
CLOSE_TIMEOUT = 3.0


class SecurityEvents:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        metrics: Metrics | None = None,
        flush_delay: float = FLUSH_DELAY,
        max_pending: int = MAX_PENDING,
        bulk: Callable[[list[dict[str, Any]]], Awaitable[None]] | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._metrics = metrics
        self._flush_delay = flush_delay
        self._max_pending = max_pending
        # PostgreSQL: COPY through the fast path's pool (storage/sql/fastpath.py); else a multi-row INSERT.
        self._bulk = bulk or self._insert
        self._pending: list[dict[str, Any]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._writing: asyncio.Lock | None = None
        self._closing = False
        self.dropped = 0

    async def record(
        self,
        event: str,
        outcome: str,
        *,
        client_id: str | None = None,
        account_id: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
        **details: Any,
    ) -> None:
        details = {k: v for k, v in details.items() if k not in _FORBIDDEN}
        if self._metrics is not None:
            self._metrics.security_event(event, outcome)
        occurred_at = self._clock.now()
        row: dict[str, Any] = {
            "occurred_at": occurred_at,
            "event": event,
            "outcome": outcome,
            "client_id": client_id,
            "account_id": account_id,
            "ip": ip,
            "user_agent": (user_agent or "")[:300] or None,
            "request_id": request_id_var.get(),
            "details": details,
        }
        level = logging.DEBUG if (event, outcome) in ROUTINE else logging.INFO
        if log.isEnabledFor(level):
            line = {
                "event": event, "outcome": outcome, "client_id": client_id, "account_id": account_id,
                "ip": ip, "request_id": row["request_id"], "time": occurred_at.isoformat(), **details,
            }
            # The message renders itself as JSON only if a handler asks for it; authserver.logging's
            # formatter embeds the dict (``security_event``) instead of parsing the text back.
            log.log(level, _JsonMessage(line), extra={"security_event": line})
        self._enqueue(row)

    # --- storing ---------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _enqueue(self, row: dict[str, Any]) -> None:
        if len(self._pending) >= self._max_pending:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("security event buffer full (%d rows); %d events not stored", len(self._pending), self.dropped)
            return
        self._pending.append(row)
        if self._flusher is None and not self._closing:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later(self._flush_delay))

    async def _flush_later(self, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
            await self.flush()
        finally:
            self._flusher = None
        if self._pending and not self._closing:  # the write failed: try again later, without a busy loop
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later(RETRY_DELAY))

    async def flush(self) -> bool:
        """Write every pending row now; False (rows kept) if the database refused them."""
        if self._writing is None:
            self._writing = asyncio.Lock()
        async with self._writing:
            while self._pending:
                batch = self._pending[:BATCH_SIZE]
                try:
                    await self._bulk(batch)
                except Exception:
                    log.exception("could not store %d security events; kept for a retry", len(batch))
                    return False
                # Only appends happen meanwhile, so the batch is still the head of the list.
                del self._pending[: len(batch)]
        return True

    async def _insert(self, rows: list[dict[str, Any]]) -> None:
        async with self._sessions.begin() as session:
            await session.execute(insert(SecurityEvent), rows)

    async def close(self, *, timeout: float = CLOSE_TIMEOUT) -> None:
        """Write what is pending, then stop the background flush (shutdown).

        A write in progress is waited for, never cancelled (a cancelled driver call can leave a SQLite
        write lock behind); the whole wait is bounded by ``timeout``, after which what is left is logged
        as lost.
        """
        self._closing = True
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except TimeoutError:
            log.error("shutdown: %d security events could not be stored in %.0f s", len(self._pending), timeout)
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher

    async def query(
        self,
        *,
        account_id: str | None = None,
        client_id: str | None = None,
        event: str | None = None,
        outcome: str | None = None,
        ip: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Stored events, newest first, filtered by any of the arguments (CLI `authserver events`, admin API)."""
        await self.flush()
        statement = select(SecurityEvent).order_by(SecurityEvent.occurred_at.desc(), SecurityEvent.id.desc())
        filters = {
            SecurityEvent.account_id: account_id, SecurityEvent.client_id: client_id, SecurityEvent.event: event,
            SecurityEvent.outcome: outcome, SecurityEvent.ip: ip,
        }
        for column, value in filters.items():
            if value is not None:
                statement = statement.where(column == value)
        if since is not None:
            statement = statement.where(SecurityEvent.occurred_at >= since)
        if until is not None:
            statement = statement.where(SecurityEvent.occurred_at < until)
        async with self._sessions() as session:
            rows = (await session.scalars(statement.limit(max(1, min(limit, 10_000))))).all()
        return [event_dict(row) for row in rows]


def event_dict(row: SecurityEvent) -> dict[str, Any]:
    return {
        "id": row.id, "time": row.occurred_at.isoformat(), "event": row.event, "outcome": row.outcome,
        "client_id": row.client_id, "account_id": row.account_id, "ip": row.ip, "user_agent": row.user_agent,
        "request_id": row.request_id, "details": dict(row.details or {}),
    }
