"""Pushed authorization requests waiting for their /authorize visit (RFC 9126 §2.2, §4), in the shared cache.

A request_uri is ``urn:ietf:params:oauth:request_uri:<256 random bits>``; only its digest names the cache
entry. It is taken once: ``take`` claims it with the cache's atomic pop, so two visits cannot both use it.
Its lifetime is checked against the injected clock as well as by the cache's expiry.
"""

from __future__ import annotations

import json
import secrets

from authserver.services import Services
from authserver.tokens.opaque import digest

REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"


def _key(request_uri: str) -> str:
    return f"par:{digest(request_uri)}"


async def push(services: Services, client_id: str, params: dict[str, str]) -> tuple[str, int]:
    """Keep validated authorization parameters; returns the request_uri and its lifetime in seconds."""
    ttl = services.settings.par.request_uri_ttl
    request_uri = REQUEST_URI_PREFIX + secrets.token_urlsafe(32)
    expires_at = services.clock.now().timestamp() + ttl
    stored = json.dumps({"client_id": client_id, "expires_at": expires_at, "params": params}, separators=(",", ":"))
    await services.cache.set(_key(request_uri), stored, ttl)
    return request_uri, ttl


async def take(services: Services, *, request_uri: str, client_id: str | None) -> dict[str, str] | None:
    """The pushed parameters, consumed; None if unknown, expired, used, or pushed by another client."""
    if client_id is None or not request_uri.startswith(REQUEST_URI_PREFIX) or len(request_uri) > 200:
        return None
    key = _key(request_uri)
    raw = await services.cache.get(key)
    if raw is None:
        return None
    stored = json.loads(raw)
    # Another client's request_uri is refused without consuming it: its owner can still use it.
    if stored["client_id"] != client_id:
        return None
    if await services.cache.pop(key) is None or stored["expires_at"] <= services.clock.now().timestamp():
        return None
    params: dict[str, str] = stored["params"]
    return params
