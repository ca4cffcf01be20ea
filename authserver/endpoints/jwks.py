"""JWKS (RFC 7517): the public halves of next, active and retired keys, as prepared bytes with an ETag."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from authserver.keys.keystore import KeyStore


async def jwks(request: Request) -> Response:
    keys: KeyStore = request.app.state.services.keys
    max_age = request.app.state.services.settings.tokens.jwks_max_age
    headers = {
        "Cache-Control": f"public, max-age={max_age}",
        "ETag": keys.jwks_etag,
        "Access-Control-Allow-Origin": "*",
    }
    if _none_match(request.headers.get("if-none-match"), keys.jwks_etag):
        return Response(status_code=304, headers=headers)
    return Response(keys.jwks_bytes, media_type="application/jwk-set+json", headers=headers)


def _none_match(header: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: a list of tags or "*", compared weakly (proxies that compress make W/ tags)."""
    if not header:
        return False
    tags = [tag.strip() for tag in header[:2048].split(",")]
    return "*" in tags or etag in (tag.removeprefix("W/") for tag in tags)
