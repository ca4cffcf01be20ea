"""JWKS (RFC 7517): the public halves of next, active and retired keys, as prepared bytes with an ETag."""

from __future__ import annotations

from starlette.types import Scope

from authserver.endpoints._http import OAUTH_JSON, mark_channel
from authserver.endpoints.prepared import PreparedJwks


def _current(scope: Scope) -> tuple[str, bytes, dict[str, str]]:
    services = scope["app"].state.services
    keys = services.keys
    headers = {
        "Cache-Control": f"public, max-age={services.settings.tokens.jwks_max_age}",
        "ETag": keys.jwks_etag,
        "Access-Control-Allow-Origin": "*",
    }
    return keys.jwks_etag, keys.jwks_bytes, headers


jwks = mark_channel(PreparedJwks(_current), OAUTH_JSON)
