"""The authorization server's signed revocation feed (``GET {issuer}/revocations``), cached.

The feed is a JWT with ``typ: revocation-list+jwt``, signed with a key of the same JWKS as the tokens::

    {"iss": …, "iat": …, "exp": …,
     "revoked": {"jti": [...], "gid": [...], "acct": {"<sub>": "inf" | <not_before>}, "client": {"<client_id>": …}}}

- Refetched (with ``If-None-Match``) once the copy is ``freshness`` seconds old, by one caller at a time.
- When the server is unreachable the last good feed keeps serving up to ``max_stale`` seconds past its
  freshness (never past its ``exp``); after that ``on_unavailable`` decides: ``"closed"`` refuses
  every token (:class:`RevocationUnavailable`, 503), ``"open"`` accepts them and logs a warning.
- A feed whose signature, ``typ``, ``iss``, ``exp`` or shape is wrong is a failed fetch: the last good
  feed keeps serving, so an access token (or anything else) sent as the feed changes nothing.

A token is refused when its ``jti`` or ``gid`` is listed, when it is a person's token (it has ``gid``)
and its ``sub`` is in ``acct``, or when its ``client_id`` is in ``client``; for a number ``not_before``,
only if the token's ``iat`` is before it — the rule the server applies to its own deny list.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from cmipro_verify._errors import InvalidToken, RevocationUnavailable, TokenError
from cmipro_verify._http import Fetcher
from cmipro_verify._jwks import JWKSCache, VerificationKey
from cmipro_verify._jws import is_time, unverified_header, verified_claims

log = logging.getLogger("cmipro_verify")

FEED_TYP = "revocation-list+jwt"
INFINITE = "inf"
MAX_FEED_BYTES = 16 * 1024 * 1024
# At most one "accepting tokens without a revocation check" warning per this many seconds.
WARN_EVERY = 60.0
OnUnavailable = Literal["closed", "open"]


def _not_before(value: Any) -> float:
    """``inf`` (every token) or the time before which tokens are revoked; anything else fails closed."""
    return value if is_time(value) else float("inf")


def _matches(not_before: float | None, iat: Any) -> bool:
    if not_before is None:
        return False
    return not_before == float("inf") or not is_time(iat) or iat < not_before


@dataclass(frozen=True)
class RevocationList:
    """One verified feed document."""

    jti: frozenset[str]
    gid: frozenset[str]
    acct: Mapping[str, float]
    client: Mapping[str, float]
    iat: float
    exp: float

    @classmethod
    def parse(cls, claims: Mapping[str, Any]) -> RevocationList:
        revoked = claims.get("revoked")
        if not isinstance(revoked, dict):
            raise ValueError("the feed has no revoked claim")
        sets: dict[str, frozenset[str]] = {}
        for kind in ("jti", "gid"):
            values = revoked.get(kind, [])
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise ValueError(f"revoked.{kind} must be a list of strings")
            sets[kind] = frozenset(values)
        maps: dict[str, dict[str, float]] = {}
        for kind in ("acct", "client"):
            values = revoked.get(kind, {})
            if not isinstance(values, dict):
                raise ValueError(f"revoked.{kind} must be an object")
            maps[kind] = {str(k): _not_before(v) for k, v in values.items()}
        return cls(sets["jti"], sets["gid"], maps["acct"], maps["client"], float(claims["iat"]), float(claims["exp"]))

    def revokes(self, claims: Mapping[str, Any]) -> bool:
        jti, gid, sub, client_id = (claims.get(n) for n in ("jti", "gid", "sub", "client_id"))
        if isinstance(jti, str) and jti in self.jti:
            return True
        iat = claims.get("iat")
        if isinstance(gid, str) and gid:
            if gid in self.gid:
                return True
            # Only a person's tokens carry gid; a client-credentials token has the client as its subject.
            if isinstance(sub, str) and _matches(self.acct.get(sub), iat):
                return True
        return isinstance(client_id, str) and _matches(self.client.get(client_id), iat)


class RevocationFeed:
    def __init__(
        self,
        url: str,
        *,
        issuer: str,
        jwks: JWKSCache,
        algorithms: Collection[str],
        freshness: float = 30.0,
        max_stale: float = 300.0,
        on_unavailable: OnUnavailable = "closed",
        leeway: float = 60.0,
        retry_after_error: float = 5.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        if on_unavailable not in ("closed", "open"):
            raise ValueError('on_revocation_unavailable must be "closed" or "open"')
        if freshness <= 0 or max_stale < 0:
            raise ValueError("revocation_freshness must be positive and revocation_max_stale not negative")
        self.url = url
        self.issuer = issuer
        self.jwks = jwks
        self.algorithms = frozenset(algorithms)
        self.freshness = freshness
        self.max_stale = max_stale
        self.on_unavailable = on_unavailable
        self.leeway = leeway
        self.retry_after_error = min(retry_after_error, freshness)
        self._clock = clock
        self._http = Fetcher(timeout=timeout, http_client=http_client, async_http_client=async_http_client)
        self._list: RevocationList | None = None
        self._etag: str | None = None
        self._fetched_at = float("-inf")  # last 200 or 304 that we accepted
        self._retry_at = float("-inf")
        self._warned_at = float("-inf")
        self._lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None
        self.fetches = 0  # requests made, for monitoring and tests

    # -- decisions shared by the sync and async paths ---------------------------------------------

    def _needs_refresh(self, now: float) -> bool:
        return now - self._fetched_at >= self.freshness and now >= self._retry_at

    def _usable(self, now: float) -> RevocationList | None:
        current = self._list
        if current is None or now - self._fetched_at > self.freshness + self.max_stale or now >= current.exp + self.leeway:
            return None
        return current

    def _decide(self, current: RevocationList | None, claims: Mapping[str, Any], now: float) -> None:
        if current is None:
            if self.on_unavailable == "closed":
                raise RevocationUnavailable("the revocation list of the authorization server cannot be fetched")
            if now - self._warned_at >= WARN_EVERY:
                self._warned_at = now
                log.warning("no current revocation list from %s: accepting tokens without a revocation check "
                            "(on_revocation_unavailable=open)", self.url)
            return
        if current.revokes(claims):
            raise InvalidToken("token revoked")

    def _request_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/revocation-list+jwt, application/jwt"}
        if self._etag:
            headers["If-None-Match"] = self._etag
        return headers

    def _unverified(self, response: httpx.Response) -> tuple[str, dict[str, Any]] | None:
        """``None`` for a 304 on the copy we hold; else the document and its header, not yet verified."""
        if response.status_code == 304 and self._list is not None:
            return None
        if response.status_code != 200:
            raise ValueError(f"the revocation feed answered HTTP {response.status_code}")
        token = response.text.strip()
        return token, unverified_header(token, algorithms=self.algorithms, typ=FEED_TYP, max_bytes=MAX_FEED_BYTES)

    def _accept(self, response: httpx.Response, found: tuple[str, dict[str, Any]] | None, key: VerificationKey | None, now: float) -> None:
        if found is not None and key is not None:
            token, header = found
            claims = verified_claims(token, header, key)
            if claims.get("iss") != self.issuer:
                raise ValueError("the revocation feed names another issuer")
            exp, iat = claims.get("exp"), claims.get("iat")
            if not is_time(exp) or now >= exp + self.leeway:
                raise ValueError("the revocation feed has expired")
            if not is_time(iat) or iat > now + self.leeway:
                raise ValueError("the revocation feed is issued in the future")
            self._list = RevocationList.parse(claims)
            self._etag = response.headers.get("etag")
        self._fetched_at = now  # a 200 we accepted, or a 304 for the copy we hold
        self._retry_at = float("-inf")

    def _failed(self, error: Exception, now: float) -> None:
        self._retry_at = now + self.retry_after_error
        log.warning("revocation feed fetch from %s failed (%s); %s", self.url, error,
                    "serving the cached list" if self._usable(now) else "no current list")

    # -- sync --------------------------------------------------------------------------------------

    def _fetch(self, now: float) -> None:
        self.fetches += 1
        try:
            response = self._http.get(self.url, self._request_headers())
            found = self._unverified(response)
            self._accept(response, found, self.jwks.get_key(found[1]["kid"]) if found else None, now)
        except (httpx.HTTPError, ValueError, TokenError) as error:
            self._failed(error, now)

    def check(self, claims: Mapping[str, Any]) -> None:
        """Raise :class:`InvalidToken` if the verified ``claims`` are revoked (or :class:`RevocationUnavailable`)."""
        with self._lock:
            now = self._clock()
            if self._needs_refresh(now):
                self._fetch(now)
            current = self._usable(now)
        self._decide(current, claims, now)

    # -- async -------------------------------------------------------------------------------------

    async def _fetch_async(self, now: float) -> None:
        self.fetches += 1
        try:
            response = await self._http.aget(self.url, self._request_headers())
            found = self._unverified(response)
            self._accept(response, found, await self.jwks.get_key_async(found[1]["kid"]) if found else None, now)
        except (httpx.HTTPError, ValueError, TokenError) as error:
            self._failed(error, now)

    async def check_async(self, claims: Mapping[str, Any]) -> None:
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        now = self._clock()
        if self._needs_refresh(now):
            async with self._async_lock:
                # Concurrent requests wait for one fetch instead of each making their own.
                now = self._clock()
                if self._needs_refresh(now):
                    await self._fetch_async(now)
        self._decide(self._usable(now), claims, now)

    def close(self) -> None:
        self._http.close()

    async def aclose(self) -> None:
        await self._http.aclose()
