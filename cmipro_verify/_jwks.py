"""A JWKS (RFC 7517) cache that follows the server's rotation rules.

- Fresh for the response's ``Cache-Control: max-age`` (minus ``Age``), revalidated with ``If-None-Match``.
- An unknown ``kid`` triggers one refetch, at most once per ``refetch_cooldown`` seconds, so tokens with
  forged kids cannot make us hammer the server (OIDC Core §10.1.1; SPEC R-11).
- When the server is unreachable the last good key set keeps serving (up to ``max_stale`` seconds past
  its freshness), so an authorization-server outage does not become a data-API outage (SPEC R-04).

Only asymmetric signature keys whose ``alg`` is allowed are kept, each bound to that one algorithm.
The same instance serves sync (:meth:`JWKSCache.get_key`) and async (:meth:`JWKSCache.get_key_async`) callers.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey

from cmipro_verify._errors import InvalidToken, JWKSUnavailable
from cmipro_verify._http import Fetcher

log = logging.getLogger("cmipro_verify")

# Which key type and curve each algorithm needs: a key is only ever used with its own algorithm.
ALGORITHM_KEYS: Mapping[str, tuple[str, str | None]] = {
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
    "EdDSA": ("OKP", "Ed25519"),
}
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    alg: str
    key: ECKey | RSAKey | OKPKey


def parse_jwks(document: Any, algorithms: Collection[str]) -> dict[str, VerificationKey]:
    """The usable keys of a JWKS document by kid; anything odd is skipped, never trusted."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set")  # noqa: TRY004 - a bad response, handled like any fetch failure
    keys: dict[str, VerificationKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict):
            continue
        kid, alg, kty = jwk.get("kid"), jwk.get("alg"), jwk.get("kty")
        if not isinstance(kid, str) or not kid or not isinstance(alg, str) or alg not in algorithms:
            continue
        if jwk.get("use", "sig") != "sig" or alg not in ALGORITHM_KEYS:
            continue
        expected_kty, expected_crv = ALGORITHM_KEYS[alg]
        if kty != expected_kty or (expected_crv is not None and jwk.get("crv") != expected_crv):
            continue
        public = {k: v for k, v in jwk.items() if k not in {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}}
        try:
            key = JWKRegistry.import_key(public)
        except (JoseError, ValueError, TypeError, KeyError):
            log.warning("JWKS key %s could not be imported; skipped", kid)
            continue
        if isinstance(key, (ECKey, RSAKey, OKPKey)) and kid not in keys:
            keys[kid] = VerificationKey(kid, alg, key)
    return keys


def freshness(headers: httpx.Headers, default: float, maximum: float) -> float:
    """Seconds the response may be used: ``max-age`` minus ``Age`` (RFC 9111 §4.2), else ``default``."""
    cache_control = headers.get("cache-control", "")
    if "no-store" in cache_control.lower() or "no-cache" in cache_control.lower():
        return 0.0
    match = _MAX_AGE.search(cache_control)
    lifetime = float(match.group(1)) if match else default
    try:
        age = float(headers.get("age", "0"))
    except ValueError:
        age = 0.0
    return max(0.0, min(lifetime, maximum) - max(age, 0.0))


class JWKSCache:
    def __init__(
        self,
        url: str,
        *,
        algorithms: Collection[str],
        refetch_cooldown: float = 30.0,
        default_max_age: float = 300.0,
        max_max_age: float = 24 * 3600.0,
        max_stale: float = 7 * 24 * 3600.0,
        retry_after_error: float = 5.0,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.algorithms = frozenset(algorithms)
        self.refetch_cooldown = refetch_cooldown
        self.default_max_age = default_max_age
        self.max_max_age = max_max_age
        self.max_stale = max_stale
        self.retry_after_error = retry_after_error
        self._clock = clock
        self._http = Fetcher(timeout=timeout, http_client=http_client, async_http_client=async_http_client)
        self._keys: dict[str, VerificationKey] = {}
        self._have_keys = False
        self._fresh_until = float("-inf")
        self._usable_until = float("-inf")
        self._etag: str | None = None
        self._retry_at = float("-inf")
        self._last_unknown_kid_fetch = float("-inf")
        self._lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None
        self.fetches = 0  # requests made, for monitoring and tests

    # -- decisions shared by the sync and async paths ---------------------------------------------

    def _needs_refresh(self, now: float) -> bool:
        return now >= self._fresh_until and now >= self._retry_at

    def _may_refetch_for(self, kid: str, now: float) -> bool:
        if kid in self._keys or now < self._retry_at or self.refetch_cooldown == float("inf"):
            return False
        return now - self._last_unknown_kid_fetch >= self.refetch_cooldown

    def _lookup(self, kid: str, now: float) -> VerificationKey:
        if not self._have_keys or now > self._usable_until:
            raise JWKSUnavailable("the signing keys of the authorization server cannot be fetched")
        key = self._keys.get(kid)
        if key is None:
            raise InvalidToken("unknown key id")
        return key

    def _request_headers(self) -> dict[str, str]:
        return {"If-None-Match": self._etag, "Accept": "application/jwk-set+json, application/json"} if self._etag else {
            "Accept": "application/jwk-set+json, application/json"
        }

    def _accept(self, response: httpx.Response, now: float) -> None:
        if response.status_code == 304 and self._have_keys:
            pass
        elif response.status_code == 200:
            keys = parse_jwks(response.json(), self.algorithms)
            if not keys:
                # Never trade a working key set for an empty one (a broken deployment, a proxy's error page).
                raise ValueError("JWKS holds no usable key")
            self._keys = keys
            self._have_keys = True
            self._etag = response.headers.get("etag")
        else:
            raise ValueError(f"JWKS answered HTTP {response.status_code}")
        lifetime = freshness(response.headers, self.default_max_age, self.max_max_age)
        self._fresh_until = now + lifetime
        self._usable_until = self._fresh_until + self.max_stale
        self._retry_at = float("-inf")

    def _failed(self, error: Exception, now: float) -> None:
        # Keep serving what we have; try again after a short pause rather than on every request.
        self._retry_at = now + self.retry_after_error
        log.warning("JWKS fetch from %s failed (%s); %s", self.url, error,
                    "serving the cached key set" if self._have_keys else "no key set yet")

    # -- sync --------------------------------------------------------------------------------------

    def _fetch(self, now: float) -> None:
        self.fetches += 1
        try:
            response = self._http.get(self.url, self._request_headers())
            self._accept(response, now)
        except (httpx.HTTPError, ValueError) as error:
            self._failed(error, now)

    def get_key(self, kid: str) -> VerificationKey:
        """The key for ``kid``: refetched when stale, or once per cooldown when the kid is unknown."""
        with self._lock:
            now = self._clock()
            fetched = False
            if self._needs_refresh(now):
                self._fetch(now)
                fetched = True
            if self._may_refetch_for(kid, now):
                self._last_unknown_kid_fetch = now
                if not fetched:
                    self._fetch(now)
            return self._lookup(kid, now)

    # -- async -------------------------------------------------------------------------------------

    async def _fetch_async(self, now: float) -> None:
        self.fetches += 1
        try:
            response = await self._http.aget(self.url, self._request_headers())
            self._accept(response, now)
        except (httpx.HTTPError, ValueError) as error:
            self._failed(error, now)

    async def get_key_async(self, kid: str) -> VerificationKey:
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        now = self._clock()
        if not self._needs_refresh(now) and not self._may_refetch_for(kid, now):
            return self._lookup(kid, now)  # the common case: no lock, no I/O
        async with self._async_lock:
            # Concurrent requests wait for one fetch instead of each making their own.
            now = self._clock()
            fetched = False
            if self._needs_refresh(now):
                await self._fetch_async(now)
                fetched = True
            if self._may_refetch_for(kid, now):
                self._last_unknown_kid_fetch = now
                if not fetched:
                    await self._fetch_async(now)
            return self._lookup(kid, now)

    def close(self) -> None:
        """Close the HTTP client this cache created (one passed in stays the caller's)."""
        self._http.close()

    async def aclose(self) -> None:
        await self._http.aclose()
