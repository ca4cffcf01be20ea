"""Security events: who did what, when, from where, and how it ended — never a secret.

Each event is written as one JSON line to the ``authserver.security`` logger and stored in the
``security_events`` table. Storing is best effort: a database failure is logged and never turns the
request that triggered the event into an error (the decision was already made).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from typing import Any

from sqlalchemy import select
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

# Keys that must never reach an event, whatever a caller passes.
_FORBIDDEN = {"password", "secret", "client_secret", "code", "token", "access_token", "refresh_token", "otp", "backup_code"}


class SecurityEvents:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, *, metrics: Metrics | None = None) -> None:
        self._sessions = sessions
        self._clock = clock
        self._metrics = metrics

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
        row = SecurityEvent(
            occurred_at=self._clock.now(),
            event=event,
            outcome=outcome,
            client_id=client_id,
            account_id=account_id,
            ip=ip,
            user_agent=(user_agent or "")[:300] or None,
            request_id=request_id_var.get(),
            details=details,
        )
        log.info(
            json.dumps(
                {
                    "event": event, "outcome": outcome, "client_id": client_id, "account_id": account_id,
                    "ip": ip, "request_id": row.request_id, "time": row.occurred_at.isoformat(), **details,
                },
                default=str,
            )
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except Exception:  # noqa: BLE001 - the event log must not fail the request it describes
            log.exception("could not store security event %s", event)

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
