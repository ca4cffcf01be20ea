"""The grace period of refresh rotation: a retried refresh gets back the answer it lost.

A mobile app on a bad network sends its refresh token, we rotate it, and the answer never arrives; the app
retries with the same (now consumed) token. Under strict rotation that retry is reuse and revokes the
family, signing the person out. With ``tokens.refresh_token_grace_period`` > 0 (30 s by default):

- every successful rotation keeps its answer (access token, refresh token, ID token, expiry, scope)
  encrypted with the server's :class:`~authserver.keys.encryption.Encryptor` in the shared cache, under
  ``rtgrace:<digest of the consumed token>``, for the grace period. The associated data binds the
  ciphertext to that key, so an entry cannot be moved onto another token. Nothing durable ever holds a
  refresh token in clear (Redis persistence writes only ciphertext);
- a consumed token presented again is **forgiven** (:meth:`RefreshGrace.recall` returns that same answer)
  only if all of these hold, and is reuse (the family is revoked) otherwise:

  1. it was consumed less than the grace period ago (the database's ``consumed_at`` against the clock,
     so the decision is the same on every instance and testable with a FrozenClock);
  2. the presenting client is the one that rotated it, with the same requested ``scope`` and the same
     token binding (DPoP key ``jkt``, client certificate ``x5t#S256``; both None for bearer tokens);
  3. the answer is in the cache and decrypts;
  4. its successor refresh token is still unused and live, in a live family (the database again): only
     the immediate predecessor is ever forgiven, never an older generation (django-oauth-toolkit #1617);
  5. its access token has not expired yet.

Parallel duplicates: the winner stores its answer after its rotation commits, so a duplicate that lost
the race may look before the answer is there. It waits for it (``POLL_DELAYS``, about 1.6 s in all), but
only when the token was consumed in the last ``IN_FLIGHT_SECONDS``; if the answer still is not there (the
winner crashed, or could not write to the cache) the duplicate is reuse.

Cache down: a rotation that cannot store its answer still answers (the tokens are committed); only its
grace is lost. A presentation that needs the cache while the cache cannot be read gets 503
``temporarily_unavailable`` and changes nothing: a dependency failure decides nothing (storage.errors.
Unavailable). Once the grace period has passed, the same presentation is reuse without asking the cache.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from authserver.clock import Clock
from authserver.keys.encryption import DecryptionError, Encryptor
from authserver.storage.cache import Cache
from authserver.storage.errors import Unavailable
from authserver.storage.sql.tokens import SqlTokenStore
from authserver.tokens.revocation import CACHE_ERRORS

log = logging.getLogger("authserver.grants")

KEY_PREFIX = "rtgrace:"
# How a duplicate that lost a parallel race waits for the winner's answer (seconds between cache reads).
POLL_DELAYS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.5, 0.5)
# Only a token consumed this recently may have a winner still answering: older ones are not waited for.
IN_FLIGHT_SECONDS = 5.0
# The entry outlives the grace period by this much in the cache (the period itself is decided on consumed_at).
TTL_MARGIN = 5.0


@dataclass(frozen=True)
class Presentation:
    """Who presented which refresh token, and how: what a retry must repeat to be forgiven."""

    token_digest: str
    client_id: str
    # The requested scope, normalised (sorted, space-separated; "" when none was requested).
    scope: str = ""
    # The key the tokens are bound to: DPoP (RFC 9449) key thumbprint, client certificate thumbprint (RFC
    # 8705); None for bearer tokens.
    jkt: str | None = None
    x5t_s256: str | None = None


def normalise_scope(scopes: list[str]) -> str:
    return " ".join(sorted(set(scopes)))


class RefreshGrace:
    def __init__(
        self,
        *,
        period: int,
        cache: Cache,
        encryptor: Encryptor,
        tokens: SqlTokenStore,
        clock: Clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.period = period
        self._cache = cache
        self._encryptor = encryptor
        self._tokens = tokens
        self._clock = clock
        self._sleep = sleep

    @property
    def enabled(self) -> bool:
        return self.period > 0

    @staticmethod
    def _key(token_digest: str) -> str:
        return KEY_PREFIX + token_digest

    @staticmethod
    def _aad(token_digest: str) -> bytes:
        return (KEY_PREFIX + token_digest).encode("ascii")

    async def remember(self, presented: Presentation, *, successor_digest: str, body: dict[str, Any], rotated_at: datetime) -> None:
        """Keep the answer of a successful rotation for the grace period; never fails the request."""
        if not self.enabled:
            return
        entry = {
            "c": presented.client_id, "q": presented.scope, "j": presented.jkt, "x": presented.x5t_s256, "s": successor_digest,
            "t": rotated_at.timestamp(), "b": body,
        }
        sealed = self._encryptor.encrypt(json.dumps(entry, separators=(",", ":")).encode(), aad=self._aad(presented.token_digest))
        try:
            await self._cache.set(self._key(presented.token_digest), sealed, self.period + TTL_MARGIN)
        except CACHE_ERRORS:
            # The rotation is committed and its tokens are valid: answer them. Only the grace is lost, so a
            # retry of this request will be reuse (strict), as without the grace period.
            log.warning("cache unavailable: refresh answer not kept for the grace period", exc_info=True)

    async def recall(self, presented: Presentation, *, consumed_at: datetime | None) -> dict[str, Any] | None:
        """The answer to give a consumed token presented again, or None: it is reuse.

        Raises Unavailable (503, nothing changed) when the cache cannot be read within the grace period.
        """
        if not self.enabled or consumed_at is None:
            return None
        now = self._clock.now()
        age = (now - consumed_at).total_seconds()
        if age >= self.period:
            return None
        sealed = await self._read(presented.token_digest, wait=age < IN_FLIGHT_SECONDS)
        if sealed is None:
            return None
        try:
            entry = json.loads(self._encryptor.decrypt(sealed, aad=self._aad(presented.token_digest)))
            body: dict[str, Any] = dict(entry["b"])
            same = (entry["c"], entry["q"], entry["j"], entry["x"]) == (
                presented.client_id, presented.scope, presented.jkt, presented.x5t_s256
            )
            successor: str = entry["s"]
            rotated_at = float(entry["t"])
        except (DecryptionError, ValueError, KeyError, TypeError):
            log.warning("refresh grace entry unreadable; treated as missing", exc_info=True)
            return None
        if not same:
            return None
        found = await self._tokens.get_refresh_token(successor)
        if found is None:
            return None
        row, grant = found
        live = (
            row.consumed_at is None and row.revoked_at is None and row.expires_at > now
            and grant.revoked_at is None and grant.expires_at > now
        )
        if not live:
            return None  # the successor was used (or the family ended): this is reuse
        expires_in = int(body["expires_in"]) - int(now.timestamp() - rotated_at)
        if expires_in <= 0:
            return None
        body["expires_in"] = expires_in
        return body

    async def _read(self, token_digest: str, *, wait: bool) -> str | None:
        key = self._key(token_digest)
        try:
            sealed = await self._cache.get(key)
            for delay in POLL_DELAYS if wait else ():
                if sealed is not None:
                    break
                await self._sleep(delay)
                sealed = await self._cache.get(key)
        except CACHE_ERRORS as error:
            log.warning("cache unavailable while checking a refresh retry", exc_info=True)
            raise Unavailable(f"cache: {type(error).__name__}") from error
        return sealed
