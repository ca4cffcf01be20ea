"""Clients' public keys for private_key_jwt (RFC 7523): the registered ``jwks``, or fetched from ``jwks_uri``.

A fetch has a timeout and a size limit, follows no redirect (a 3xx is a failure: the registered URL is
the one trusted), and is refused for http URLs in production. A fetched set is kept ``cache_ttl``
seconds; an assertion naming an unknown ``kid`` may refetch at once (the client rotated its keys), at most
once per ``refetch_interval`` per URL (forced refetches only), so a stream of made-up kids cannot turn into a stream of fetches.
When a refetch fails the previous set keeps answering. Imported inline sets are kept per client too, so
the token endpoint does not parse the same keys on every request.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from joserfc.jwk import KeySet

from authserver.clock import Clock
from authserver.protocol.jwks import JwksError, import_public_key_set, jwks_uri_problem

log = logging.getLogger("authserver.client_jwks")


class ClientKeysUnavailable(Exception):
    """The client's keys could not be had (bad URL, fetch failed, not a public JWK Set)."""


@dataclass
class _Fetched:
    key_set: KeySet
    expires: float
    # When a refetch was last forced by an unknown kid (the budget counts these only).
    forced: float


class ClientKeys:
    MAX_ENTRIES = 10_000

    def __init__(
        self,
        clock: Clock,
        *,
        timeout: float,
        max_bytes: int,
        cache_ttl: float,
        refetch_interval: float,
        https_only: bool,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._clock = clock
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._cache_ttl = cache_ttl
        self._refetch_interval = refetch_interval
        self._https_only = https_only
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._remote: dict[str, _Fetched] = {}
        self._inline: dict[str, tuple[str, KeySet]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def inline(self, client_id: str, jwks: dict[str, object]) -> KeySet:
        fingerprint = json.dumps(jwks, sort_keys=True, separators=(",", ":"))
        hit = self._inline.get(client_id)
        if hit is not None and hit[0] == fingerprint:
            return hit[1]
        try:
            key_set = import_public_key_set(jwks)
        except JwksError as error:
            raise ClientKeysUnavailable(f"registered jwks: {error}") from None
        if len(self._inline) > self.MAX_ENTRIES:
            self._inline.clear()
        self._inline[client_id] = (fingerprint, key_set)
        return key_set

    async def remote(self, uri: str, *, refresh: bool = False) -> KeySet:
        """The key set at ``uri``; ``refresh`` asks for a newer one (unknown kid), within the refetch budget."""
        hit = self._fresh(uri, refresh)
        if hit is not None:
            return hit.key_set
        async with self._locks.setdefault(uri, asyncio.Lock()):
            # Another request may have fetched while this one waited.
            hit = self._fresh(uri, refresh)
            if hit is not None:
                return hit.key_set
            now = self._clock.monotonic()
            previous = self._remote.get(uri)
            try:
                key_set = await self._fetch(uri)
            except ClientKeysUnavailable as error:
                if previous is None:
                    raise
                # Keep answering with the keys we had; try again after the refetch interval.
                log.warning("jwks_uri refetch failed, keeping the previous keys: %s", error)
                previous.expires = max(previous.expires, now + self._refetch_interval)
                previous.forced = now if refresh else previous.forced
                return previous.key_set
            if len(self._remote) > self.MAX_ENTRIES:
                self._remote.clear()
            forced = now if refresh else (previous.forced if previous is not None else float("-inf"))
            self._remote[uri] = _Fetched(key_set, now + self._cache_ttl, forced)
            return key_set

    def _fresh(self, uri: str, refresh: bool) -> _Fetched | None:
        """The cached entry if it may answer: not expired, and for a refresh, the budget spent recently."""
        hit = self._remote.get(uri)
        now = self._clock.monotonic()
        if hit is None or hit.expires <= now:
            return None
        if refresh and now - hit.forced >= self._refetch_interval:
            return None
        return hit

    async def _fetch(self, uri: str) -> KeySet:
        problem = jwks_uri_problem(uri, https_only=self._https_only)
        if problem is not None:
            raise ClientKeysUnavailable(f"jwks_uri {problem}")
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self._timeout, follow_redirects=False, transport=self._transport, trust_env=False,
                headers={"Accept": "application/jwk-set+json, application/json"},
            )
        host = urlsplit(uri).hostname
        try:
            async with asyncio.timeout(self._timeout):
                async with self._http.stream("GET", uri) as response:
                    if response.status_code != 200:
                        raise ClientKeysUnavailable(f"jwks_uri of {host} answered {response.status_code}")
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > self._max_bytes:
                            raise ClientKeysUnavailable(f"jwks_uri of {host} answered more than {self._max_bytes} bytes")
        except (httpx.HTTPError, TimeoutError, OSError) as error:
            raise ClientKeysUnavailable(f"jwks_uri of {host} could not be fetched: {type(error).__name__}") from None
        try:
            return import_public_key_set(json.loads(bytes(body)))
        except (ValueError, JwksError) as error:
            raise ClientKeysUnavailable(f"jwks_uri of {host}: not a public JWK Set ({error})") from None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
