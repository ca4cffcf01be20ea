"""CORS for browser clients (SPAs) at the machine endpoints a browser app calls itself: ``/token``,
``/revoke``, ``/userinfo``, and ``/introspect`` only with ``cors.introspection`` (WHATWG Fetch §3.2).

The rule:
- An origin is allowed if ``cors.allowed_origins`` lists it, or (``cors.from_redirect_uris``) it is the
  origin of an http(s) redirect URI registered by an enabled **public** client: an app that runs in the
  browser receives its code there and redeems it from there. Confidential clients are servers; they need
  no CORS.
- An allowed origin gets ``Access-Control-Allow-Origin: <that origin>`` (never ``*``) and never
  ``Access-Control-Allow-Credentials``: these endpoints take no cookies, and a fetch with
  ``credentials: "include"`` fails in the browser. Every answer on these paths carries ``Vary: Origin``.
- A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) from an allowed origin
  for an allowed method and headers gets 204 with the allow headers; any other preflight 403.
  ``OPTIONS`` without ``Origin`` goes to the endpoint as before.
- Every other path (sign-in, consent, account pages, discovery, JWKS) gets no CORS headers from here:
  they stay same-origin.

Cost on the hot path: a dict lookup of the path and, with an ``Origin`` header, a set lookup. No SQL per
request: the origin set is computed from the client registry at start-up and recomputed in the
background when it is older than ``cors.refresh_seconds`` or this instance changed a client (another
instance's change arrives within the interval, like the registry cache's 10 s).
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlsplit

from authserver.settings import CorsSettings
from authserver.storage.sql.clients import SqlClientStore

log = logging.getLogger("authserver.cors")

# Request headers a browser app may send (Authorization for UserInfo; Content-Type for JSON-ish clients;
# DPoP for proofs, RFC 9449).
ALLOWED_HEADERS = frozenset({"authorization", "content-type", "dpop"})
# Response headers the app's script may read besides the safelisted ones (DPoP-Nonce: RFC 9449 §8).
EXPOSED_HEADERS = b"WWW-Authenticate, Retry-After, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, DPoP-Nonce"
DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(uri: str) -> str | None:
    """The serialised origin of an http(s) URL (RFC 6454 §6.1: lower-case scheme and host, default port
    left out), or None for other schemes (native apps' custom schemes need no CORS)."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" if port in (None, DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


class CorsPolicy:
    def __init__(self, settings: CorsSettings, clients: SqlClientStore) -> None:
        self._settings = settings
        self._clients = clients
        self._configured = frozenset(o for o in (origin_of(x) for x in settings.allowed_origins) if o)
        self._origins: frozenset[str] = self._configured
        self._fresh_until = 0.0
        self._seen_changes = -1
        self.pending: asyncio.Task[None] | None = None
        methods = {"/token": b"POST", "/revoke": b"POST", "/userinfo": b"GET, POST"}
        if settings.introspection:
            methods["/introspect"] = b"POST"
        # path -> the methods a preflight may ask for
        self.paths = methods
        self._max_age = str(settings.max_age).encode()

    @property
    def origins(self) -> frozenset[str]:
        return self._origins

    async def reload(self) -> None:
        """Recompute the origin set from the registry (start-up, then in the background)."""
        changes = self._clients.changes
        origins = set(self._configured)
        if self._settings.from_redirect_uris:
            origins.update(o for o in (origin_of(u) for u in await self._clients.public_redirect_uris()) if o)
        self._origins = frozenset(origins)
        self._seen_changes = changes
        self._fresh_until = time.monotonic() + self._settings.refresh_seconds

    def _refresh_if_stale(self) -> None:
        if self.pending is not None and not self.pending.done():
            return
        if time.monotonic() < self._fresh_until and self._clients.changes == self._seen_changes:
            return
        self.pending = asyncio.create_task(self._background_reload())

    async def _background_reload(self) -> None:
        try:
            await self.reload()
        except Exception:  # noqa: BLE001 - keep answering from the last set; try again after the interval
            log.warning("could not reload the CORS origins; keeping the last set", exc_info=True)
            self._fresh_until = time.monotonic() + self._settings.refresh_seconds

    def allows(self, origin: str) -> bool:
        self._refresh_if_stale()
        return origin in self._origins

    def response_headers(self, origin: bytes | None) -> list[tuple[bytes, bytes]]:
        """Headers for an actual (non-preflight) answer on a CORS path."""
        if origin is not None and self.allows(origin.decode("latin-1")):
            return [(b"access-control-allow-origin", origin), (b"access-control-expose-headers", EXPOSED_HEADERS), (b"vary", b"Origin")]
        return [(b"vary", b"Origin")]

    def preflight(self, path: str, raw_origin: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, list[tuple[bytes, bytes]]]:
        """The status and headers of the answer to a preflight request."""
        found = {name: value.decode("latin-1") for name, value in headers if name in (
            b"access-control-request-method", b"access-control-request-headers")}
        origin = raw_origin.decode("latin-1")
        method = found.get(b"access-control-request-method", "")
        requested = {h.strip().lower() for h in found.get(b"access-control-request-headers", "").split(",") if h.strip()}
        allowed_methods = self.paths[path]
        vary = [(b"vary", b"Origin")]
        if not self.allows(origin) or method not in allowed_methods.decode().split(", ") or not requested <= ALLOWED_HEADERS:
            return 403, vary
        return 204, [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-methods", allowed_methods),
            (b"access-control-allow-headers", b"Authorization, Content-Type, DPoP"),
            (b"access-control-max-age", self._max_age),
            *vary,
        ]


__all__ = ["CorsPolicy", "origin_of"]
