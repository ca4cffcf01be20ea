"""The refresh-token rotation as one PostgreSQL statement, through asyncpg directly.

Rotation is the hot path of every signed-in app (W6 in bench/). Through the ORM it took a read of the
token and its grant, a read of the account, and a transaction locking the grant, claiming the token and
inserting its successor: eight round trips and about 7 ms of CPU. Here the same work is one prepared
statement in autocommit, on a small asyncpg pool of its own:

1. ``fam`` finds the token for this client with its live grant and active account, and locks the grant
   row (``FOR UPDATE OF g``), the same lock ``SqlTokenStore.rotate_refresh_token`` and
   ``SqlTokenStore.revoke_grant`` take first, so a revocation or a parallel rotation of the family waits
   for us or we for it, and PostgreSQL re-checks the grant after the wait (READ COMMITTED re-reads a row
   it waited for); a family bound to a DPoP key (RFC 9449 §5) is found only with a proof of that key
   (``$6``, the proof's thumbprint, or NULL);
2. ``claimed`` consumes the token if it is still unconsumed, unrevoked and unexpired (a parallel caller
   who got there first leaves nothing to claim);
3. ``successor`` inserts the new token with the family's scope (RFC 6749 §6), expiring at the idle
   lifetime or the family's end, whichever is first.

It answers the grant and account fields the token response needs, or no row. No row means nothing was
changed, and the caller runs the general path, which tells reuse (revoke the family) and a retry within
the grace period (answered from the cache; authserver/tokens/refresh_grace.py) from an unknown, foreign,
revoked or expired token. Requests that narrow ``scope`` also take the general path.

SQLite (the embedded default) has no data-modifying CTEs and does not need this: there the ORM path is
the only one. Every integration test runs on both engines.

The same pool appends buffered security events with COPY (``copy_events``; authserver/events.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from authserver.settings import DatabaseSettings
from authserver.storage.errors import Unavailable

ROTATE = """
WITH fam AS (
    SELECT g.grant_id, g.account_id, g.scopes, g.audience, g.auth_time, g.amr, g.acr, g.expires_at, a.roles
    FROM refresh_tokens t
    JOIN grants g ON g.grant_id = t.grant_id
    JOIN accounts a ON a.account_id = g.account_id
    WHERE t.token_digest = $1 AND t.client_id = $2
      AND g.revoked_at IS NULL AND g.expires_at > $3 AND a.disabled_at IS NULL
      AND (g.dpop_jkt IS NULL OR g.dpop_jkt = $6::text)
    FOR UPDATE OF g
), claimed AS (
    UPDATE refresh_tokens t SET consumed_at = $3
    FROM fam
    WHERE t.token_digest = $1 AND t.grant_id = fam.grant_id
      AND t.consumed_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > $3
    RETURNING t.token_digest
), successor AS (
    INSERT INTO refresh_tokens (token_digest, grant_id, client_id, scopes, created_at, expires_at)
    SELECT $4, fam.grant_id, $2, fam.scopes, $3, LEAST($5::timestamp, fam.expires_at)
    FROM fam, claimed
)
SELECT fam.grant_id, fam.account_id, fam.audience, fam.auth_time, fam.amr, fam.acr, fam.roles, fam.scopes
FROM fam, claimed
"""

EVENT_COLUMNS = ("occurred_at", "event", "outcome", "client_id", "account_id", "ip", "user_agent", "request_id", "details")

# What asyncpg raises when PostgreSQL is down, slow, restarting or refusing: answered 503 like the ORM's.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)


@dataclass(frozen=True)
class Rotated:
    grant_id: str
    account_id: str
    audience: list[str]
    auth_time: datetime | None
    amr: list[str]
    acr: str | None
    roles: list[str]
    scopes: list[str]


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


async def _json_codec(connection: asyncpg.Connection) -> None:
    # Binary format (json's binary form is its text), so COPY can send it too.
    await connection.set_type_codec(
        "json", encoder=_json_bytes, decoder=json.loads, schema="pg_catalog", format="binary"
    )


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), default=str).encode()


async def _keep_session(connection: asyncpg.Connection) -> None:
    """Release without asyncpg's reset round trip: these connections never change session state
    (autocommit statements only, no SET, LISTEN or advisory locks)."""


class PgFastPath:
    def __init__(self, settings: DatabaseSettings, *, before_statement: Callable[[], Awaitable[None]] | None = None) -> None:
        self._dsn = make_url(settings.url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._settings = settings
        self._before = before_statement
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Lock | None = None

    async def _acquire_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._pool is None:
                s = self._settings
                self._pool = await asyncpg.create_pool(
                    self._dsn, min_size=0, max_size=max(1, s.pool_size), init=_json_codec, reset=_keep_session,
                    timeout=s.pool_timeout, command_timeout=max(s.statement_timeout_ms / 1000 + 1, 2),
                    max_inactive_connection_lifetime=300,
                    server_settings={"application_name": "authserver-fast", "statement_timeout": str(s.statement_timeout_ms)},
                )
        return self._pool

    async def rotate_refresh_token(
        self, token_digest: str, *, client_id: str, new_digest: str, idle_ttl: int, now: datetime,
        dpop_jkt: str | None = None,
    ) -> Rotated | None:
        """Consume a live refresh token of ``client_id`` and store its successor; None if nothing was changed
        (also when the family is bound to a DPoP key other than ``dpop_jkt``)."""
        moment = _naive_utc(now)
        try:
            if self._before is not None:
                await self._before()
            pool = await self._acquire_pool()
            async with pool.acquire(timeout=self._settings.pool_timeout) as connection:
                row = await connection.fetchrow(
                    ROTATE, token_digest, client_id, moment, new_digest, moment + timedelta(seconds=idle_ttl), dpop_jkt
                )
        except DRIVER_ERRORS as error:
            raise Unavailable(f"database: {type(error).__name__}") from error
        if row is None:
            return None
        auth_time: datetime | None = row["auth_time"]
        return Rotated(
            grant_id=row["grant_id"], account_id=row["account_id"], audience=list(row["audience"] or []),
            auth_time=auth_time.replace(tzinfo=UTC) if auth_time is not None else None,
            amr=list(row["amr"] or []), acr=row["acr"], roles=list(row["roles"] or []), scopes=list(row["scopes"] or []),
        )

    async def copy_events(self, rows: list[dict[str, Any]]) -> None:
        """Append security events with COPY (about 1 µs a row, a tenth of a multi-row INSERT)."""
        records = [
            tuple(_naive_utc(row[c]) if c == "occurred_at" else row[c] for c in EVENT_COLUMNS) for row in rows
        ]
        try:
            if self._before is not None:
                await self._before()
            pool = await self._acquire_pool()
            async with pool.acquire(timeout=self._settings.pool_timeout) as connection:
                await connection.copy_records_to_table("security_events", records=records, columns=EVENT_COLUMNS)
        except DRIVER_ERRORS as error:
            raise Unavailable(f"database: {type(error).__name__}") from error

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()


def create_fast_path(settings: DatabaseSettings, **options: Any) -> PgFastPath | None:
    """The fast path for PostgreSQL URLs; None for SQLite."""
    return PgFastPath(settings, **options) if settings.url.startswith("postgresql") else None
