"""The signed revocation feed, ``GET /revocations`` (public, like /jwks): the live deny list as a JWT with
``typ: revocation-list+jwt`` for verifiers that check tokens offline. The document and its rules are in
``authserver/tokens/feed.py`` and docs/verifying-tokens.md.

- 200 ``application/revocation-list+jwt`` with an ``ETag``, or 304 when ``If-None-Match`` names it;
- ``Cache-Control: public, max-age=tokens.revocation_feed_max_age`` (seconds; small, since a shared cache
  in front of us adds its age to how stale a verifier's view can be);
- 503 ``temporarily_unavailable`` when the table cannot be read: verifiers keep their last good feed.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from authserver.endpoints._http import oauth_json
from authserver.endpoints.prepared import none_match
from authserver.services import Services

MEDIA_TYPE = "application/revocation-list+jwt"


@oauth_json
async def revocations(request: Request) -> Response:
    services: Services = request.app.state.services
    document = await services.revocation_feed.current()
    headers = {
        "Cache-Control": f"public, max-age={services.settings.tokens.revocation_feed_max_age}",
        "ETag": document.etag,
        "Access-Control-Allow-Origin": "*",
    }
    if none_match(request.headers.get("if-none-match"), document.etag):
        return Response(status_code=304, headers=headers)
    return Response(document.token, headers=headers, media_type=MEDIA_TYPE)
