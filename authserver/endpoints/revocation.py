"""Token revocation (RFC 7009).

- §2.1: the client authenticates (public clients by ``client_id``); it may revoke only tokens issued to it —
  another client's valid token is refused with ``invalid_request`` and nothing changes.
- §2.1: ``token_type_hint`` is only a hint: the token's own form (``rt_`` prefix or a JWT) decides, and an
  unknown hint is ignored (§2.2).
- §2.2: 200 with an empty body for a revoked token, an unknown one, an expired one, and one already revoked.
- Revoking a refresh token revokes its family: every refresh token of the grant and every access token
  issued from it (deny list). Revoking an access token revokes that token only (its ``jti``).
- §2.2.1: if the database or cache cannot record the revocation, 503: the client must retry.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from authserver.endpoints._guard import authenticated_form, client_ip
from authserver.endpoints._http import NO_STORE, method_not_allowed, oauth_json
from authserver.errors import InvalidRequest
from authserver.services import Services
from authserver.tokens.opaque import REFRESH_PREFIX, digest

NOT_YOURS = "The token was not issued to this client."


@oauth_json
async def revoke(request: Request) -> Response:
    if request.method != "POST":
        return method_not_allowed("POST")
    services: Services = request.app.state.services
    params, _, client = await authenticated_form(request, services, "revocation")
    ip = client_ip(request)
    token = params.get("token")
    if not token:
        raise InvalidRequest("Missing token.")
    if token.startswith(REFRESH_PREFIX):
        found = await services.tokens.get_refresh_token(digest(token))
        if found is not None:
            row, grant = found
            if row.client_id != client.client_id:
                raise InvalidRequest(NOT_YOURS)
            if await services.revocations.revoke_grant(grant.grant_id, reason="revoked_by_client"):
                await services.events.record(
                    "token_revoked", "success", client_id=client.client_id, account_id=grant.account_id, ip=ip,
                    token_type="refresh_token", grant_id=grant.grant_id,
                )
    else:
        claims = services.signer.verify_access_token(token)
        if claims is not None:
            if claims.get("client_id") != client.client_id:
                raise InvalidRequest(NOT_YOURS)
            jti, exp = claims.get("jti"), claims.get("exp")
            if isinstance(jti, str) and isinstance(exp, int):
                await services.revocations.revoke_access_token(jti, exp=exp)
                await services.events.record(
                    "token_revoked", "success", client_id=client.client_id, ip=ip,
                    account_id=str(claims["sub"]) if "gid" in claims else None, token_type="access_token",
                )
    return Response(b"", status_code=200, headers=dict(NO_STORE))
