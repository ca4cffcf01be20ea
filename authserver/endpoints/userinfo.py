"""UserInfo (OIDC Core §5.3) with Bearer tokens (RFC 6750 §2.1 header, §2.2 form body)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from authserver.endpoints._guard import client_ip
from authserver.endpoints._http import json_response, method_not_allowed, oauth_json, read_form
from authserver.errors import InsufficientScope, InvalidRequest, InvalidToken, OAuthError
from authserver.oidc.claims import userinfo_claims
from authserver.tokens.opaque import digest


def _bearer_error(error: OAuthError) -> OAuthError:
    error.headers["WWW-Authenticate"] = f'Bearer error="{error.error}", error_description="{error.description}"'
    return error


@oauth_json
async def userinfo(request: Request) -> Response:
    if request.method not in ("GET", "POST"):
        return method_not_allowed("GET, POST")
    services = request.app.state.services
    header = request.headers.get("authorization")
    token = None
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise _bearer_error(InvalidToken("Malformed Authorization header."))
        token = value.strip()
    if request.method == "POST" and request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = await read_form(request)
        if "access_token" in form:
            if token is not None:
                raise _bearer_error(InvalidRequest("Send the access token once."))
            token = form["access_token"]
    if token is None:
        error = InvalidToken("An access token is required.")
        error.headers["WWW-Authenticate"] = 'Bearer realm="authserver"'
        raise error
    claims = services.signer.verify_access_token(token)
    if claims is None:
        raise _bearer_error(InvalidToken("The access token is invalid or expired."))
    # Per token (its jti, else its digest): a leaked token cannot be used to hammer the account store.
    jti = claims.get("jti")
    await services.limiter.check(
        "userinfo", jti if isinstance(jti, str) and len(jti) <= 128 else digest(token), ip=client_ip(request),
        client_id=str(claims.get("client_id", ""))[:64] or None,
    )
    scopes = str(claims.get("scope", "")).split()
    if "openid" not in scopes:
        raise _bearer_error(InsufficientScope("The access token lacks the openid scope."))
    if await services.revocations.is_revoked(claims):
        raise _bearer_error(InvalidToken("The access token was revoked."))
    gid = claims.get("gid")
    if isinstance(gid, str):
        grant = await services.tokens.get_grant(gid)
        if grant is None or grant.revoked_at is not None:
            raise _bearer_error(InvalidToken("The access token was revoked."))
    account = await services.accounts.get(str(claims.get("sub")))
    if account is None or account.disabled_at is not None:
        raise _bearer_error(InvalidToken("The access token is invalid or expired."))
    return json_response(userinfo_claims(account, scopes))
