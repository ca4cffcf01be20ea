"""UserInfo (OIDC Core §5.3) with Bearer tokens (RFC 6750 §2.1 header, §2.2 form body), through the gate.

Its audience is the UserInfo endpoint itself (``{issuer}/userinfo``) or the issuer: a code-flow token that
carries ``openid`` lists it unless the client narrowed the token to another resource (RFC 8707
``resource``), as node-oidc-provider does (docs/core-protocol.md, "Audiences").
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from authserver.endpoints._http import json_response, method_not_allowed, oauth_json
from authserver.endpoints.bearer import Protection, gate, protected
from authserver.oidc.claims import userinfo_claims

PROTECTION = Protection(scope="openid", audiences=("/userinfo", ""), form_field=True, rate_scope="userinfo")


@protected(PROTECTION)
@oauth_json
async def userinfo(request: Request) -> Response:
    if request.method not in ("GET", "POST"):
        return method_not_allowed("GET, POST")
    bearer = await gate(request, request.app.state.services, PROTECTION)
    return json_response(userinfo_claims(bearer.person, sorted(bearer.scopes)))
