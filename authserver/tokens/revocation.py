"""Revocation state of access tokens: the deny list (RFC 7009 §2.1 "invalidation is immediate";
RFC 7662 §4 "check … revocation").

Access tokens are self-contained JWTs, so revoking one means remembering it until it expires. Four kinds
of entry, each one cache key ``deny:<entry>`` whose value says which tokens it matches:

- ``jti:<jti>`` — one access token (revoked at ``/revoke``), ``inf``;
- ``gid:<grant id>`` — every access token of a family (refresh-token revocation, reuse, code reuse,
  logout, sign out everywhere), ``inf``;
- ``acct:<account id>`` — a person's tokens: ``inf`` while disabled or after erasure, or the epoch time
  of re-enabling (tokens issued before it stay dead);
- ``client:<client id>`` — every access token issued to a client (its ``client_id`` claim): ``inf`` while
  the client is disabled or after it is deleted, or the epoch time of re-enabling, as for accounts.

Every entry is written to the ``deny_list`` table first (durable) and then to the cache (hot, shared by
all instances, so another instance sees it on its next check). An entry lives as long as the tokens it
can match: a jti until that token's ``exp``, the others for the longest access-token lifetime in force.
The same table is published to offline verifiers as the signed revocation feed (``authserver.tokens.feed``).

The cache holds a marker key, ``deny:loaded``. A check reads the marker and the token's entries in one
round trip; if the marker is missing (Redis flushed or restarted, or a fresh in-process cache), the
entries are reloaded from the table before answering, so a flush never resurrects a revoked token. If the
cache is unreachable, the check asks the table directly (correct, slower).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from authserver.clock import Clock
from authserver.storage.cache import Cache
from authserver.storage.sql.lifecycle import DenyEntry, SqlLifecycleStore
from authserver.storage.sql.tokens import SqlTokenStore

log = logging.getLogger("authserver.revocation")

LOADED = "deny:loaded"
INFINITE = "inf"
# How long the marker lives; when it lapses the next check reloads the list (cheap, bounded by purge).
LOADED_TTL = 24 * 3600
# Slack for verifiers that accept tokens a little past exp.
LEEWAY = 60

try:
    from redis.exceptions import RedisError

    CACHE_ERRORS: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
except ImportError:  # pragma: no cover
    CACHE_ERRORS = (OSError, TimeoutError)


def _entries_for(claims: Mapping[str, Any]) -> list[str]:
    entries = []
    jti = claims.get("jti")
    if isinstance(jti, str) and jti:
        entries.append(f"jti:{jti}")
    gid = claims.get("gid")
    if isinstance(gid, str) and gid:
        entries.append(f"gid:{gid}")
        # Only user tokens carry a gid; client-credentials tokens have the client as subject.
        sub = claims.get("sub")
        if isinstance(sub, str) and sub:
            entries.append(f"acct:{sub}")
    client_id = claims.get("client_id")
    if isinstance(client_id, str) and client_id:
        entries.append(f"client:{client_id}")
    return entries


def issued_before_reenabling(disabled_at: datetime) -> datetime:
    """The ``not_before`` of an account or client enabled again after being disabled at ``disabled_at``.

    ``iat`` has whole seconds: every token stamped with the second of the disabling or earlier is denied
    (none can have been issued while disabled). A token issued in that same second after re-enabling is
    denied too: harmless, the client asks again.
    """
    return datetime.fromtimestamp(math.floor(disabled_at.timestamp()) + 1, tz=UTC)


def _matches(not_before: str | None, iat: Any) -> bool:
    if not_before is None:
        return False
    if not_before == INFINITE:
        return True
    try:
        limit = float(not_before)
    except ValueError:
        return True  # unreadable entry: fail closed
    return not isinstance(iat, (int, float)) or iat < limit


class Revocations:
    def __init__(
        self,
        *,
        store: SqlLifecycleStore,
        tokens: SqlTokenStore,
        cache: Cache,
        clock: Clock,
        default_access_ttl: int,
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._cache = cache
        self._clock = clock
        self._default_access_ttl = default_access_ttl
        self._rebuilding: asyncio.Lock | None = None

    # --- writing -----------------------------------------------------------------------------------

    async def revoke_access_token(self, jti: str, *, exp: int) -> None:
        """Deny one access token until it expires."""
        expires_at = datetime.fromtimestamp(exp + LEEWAY, tz=self._clock.now().tzinfo)
        await self._deny([DenyEntry(f"jti:{jti}", INFINITE, expires_at)])

    async def revoke_grant(self, grant_id: str, *, reason: str) -> bool:
        """Revoke a family: its refresh tokens (in the database) and its access tokens (deny list).

        Always writes the deny entry, even if the grant was already revoked by someone else. True if
        this call revoked a live grant.
        """
        was_live = await self._tokens.revoke_grant(grant_id, reason=reason)
        await self._deny([DenyEntry(f"gid:{grant_id}", INFINITE, await self._family_expiry())])
        return was_live

    async def revoke_grants(self, grant_ids: Iterable[str], *, reason: str) -> int:
        grant_ids = list(grant_ids)
        revoked = 0
        for grant_id in grant_ids:
            revoked += await self._tokens.revoke_grant(grant_id, reason=reason)
        if grant_ids:
            expires_at = await self._family_expiry()
            await self._deny([DenyEntry(f"gid:{gid}", INFINITE, expires_at) for gid in grant_ids])
        return revoked

    async def deny_account(self, account_id: str, *, not_before: datetime | None = None) -> None:
        """Deny a person's access tokens: all of them (``not_before`` None), or those issued before it."""
        await self._deny_issued_before(f"acct:{account_id}", not_before)

    async def deny_client(self, client_id: str, *, not_before: datetime | None = None) -> None:
        """Deny the access tokens issued to a client: all of them (``not_before`` None), or those issued before it."""
        await self._deny_issued_before(f"client:{client_id}", not_before)

    async def _deny_issued_before(self, entry: str, not_before: datetime | None) -> None:
        value = INFINITE if not_before is None else repr(not_before.timestamp())
        await self._deny([DenyEntry(entry, value, await self._family_expiry())])

    async def _family_expiry(self) -> datetime:
        longest = await self._store.longest_access_token_ttl(self._default_access_ttl)
        return self._clock.now() + timedelta(seconds=longest + LEEWAY)

    async def _deny(self, entries: list[DenyEntry]) -> None:
        await self._store.add_deny_entries(entries)  # durable first: a crash here leaves it in the table
        now = self._clock.now()
        try:
            for entry in entries:
                await self._cache.set(f"deny:{entry.entry}", entry.not_before, max((entry.expires_at - now).total_seconds(), 1))
        except CACHE_ERRORS:
            # The table has it. Drop the marker so every instance reloads from the table; if even that
            # fails, raise (503): the caller must not believe the revocation is visible everywhere yet.
            log.warning("cache unavailable while writing the deny list; instances will reload it", exc_info=True)
            await self._cache.delete(LOADED)

    # --- reading ---------------------------------------------------------------------------------

    async def is_revoked(self, claims: Mapping[str, Any]) -> bool:
        """Whether a verified access token's claims match a deny entry (one cache round trip)."""
        entries = _entries_for(claims)
        if not entries:
            return False
        keys = [LOADED] + [f"deny:{e}" for e in entries]
        try:
            values = await self._cache.get_many(keys)
            if values[0] is None:
                await self.rebuild()
                values = await self._cache.get_many(keys)
            found = dict(zip(entries, values[1:], strict=True))
        except CACHE_ERRORS:
            log.warning("cache unavailable: checking the deny list in the database")
            found = dict(await self._store.find_deny_entries(entries))
        iat = claims.get("iat")
        return any(_matches(found.get(entry), iat) for entry in entries)

    async def rebuild(self) -> int:
        """Copy the durable deny list into the cache, then set the marker. Returns the entries loaded."""
        if self._rebuilding is None:
            self._rebuilding = asyncio.Lock()
        async with self._rebuilding:
            if await self._cache.get(LOADED) is not None:
                return 0
            entries = await self._store.live_deny_entries()
            now = self._clock.now()
            for start in range(0, len(entries), 200):
                await asyncio.gather(
                    *(
                        self._cache.set(f"deny:{e.entry}", e.not_before, max((e.expires_at - now).total_seconds(), 1))
                        for e in entries[start : start + 200]
                    )
                )
            await self._cache.set(LOADED, "1", LOADED_TTL)
            log.info("deny list loaded into the cache: %d entries", len(entries))
            return len(entries)
