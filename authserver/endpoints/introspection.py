"""Token introspection (RFC 7662).

- §2.1: POST, form encoded, by an authenticated confidential client registered with ``can_introspect``;
  any other caller gets 401 ``invalid_client`` (§2.3), so the endpoint cannot be used to scan tokens.
- §2.2: an active token gives ``active`` plus ``scope``, ``client_id``, ``sub``, ``exp``, ``iat``, ``aud``,
  ``iss`` and ``token_type``; anything expired, revoked (deny list, family, disabled or erased person,
  disabled client), malformed or not ours gives exactly ``{"active": false}``.
- ``token_type_hint`` is ignored: the token's form decides.
- Who sees what (§4, "the authorization server ... determine whether the token ... is meant for the
  protected resource"): an access token is described only to a resource server it is meant for (its
  ``aud`` names one of the caller's registered ``audience`` values) or to the client it was issued to;
  anyone else gets ``{"active": false}``, so a client learns no subject or scopes of tokens for APIs
  it does not serve. Refresh tokens are reported active only to the client that holds them.

The access-token path is the hot one: a signature check, one cache round trip (the deny list) and the
in-process client registry; no SQL unless the cache is down or a refresh token is presented.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from authserver.endpoints._guard import authenticated_form
from authserver.endpoints._http import json_response, method_not_allowed, oauth_json
from authserver.errors import InvalidClient, InvalidRequest
from authserver.services import Services
from authserver.storage.sql.clients import ClientInfo
from authserver.tokens.opaque import REFRESH_PREFIX, digest

INACTIVE = {"active": False}


@oauth_json
async def introspect(request: Request) -> Response:
    if request.method != "POST":
        return method_not_allowed("POST")
    services: Services = request.app.state.services
    params, presented, client = await authenticated_form(request, services, "introspection")
    if client.is_public or not client.can_introspect:
        error = InvalidClient("This client may not introspect tokens.")
        if presented.method == "client_secret_basic":
            error.headers["WWW-Authenticate"] = 'Basic realm="authserver", error="invalid_client"'
        raise error
    token = params.get("token")
    if not token:
        raise InvalidRequest("Missing token.")
    if token.startswith(REFRESH_PREFIX):
        body = await _refresh_token(services, client, token)
    else:
        body = await _access_token(services, client, token)
    return json_response(body)


async def _access_token(services: Services, caller: ClientInfo, token: str) -> dict[str, Any]:
    claims = services.signer.verify_access_token(token)
    if claims is None or not _meant_for(caller, claims):
        return INACTIVE
    issued_to = await services.clients.get(str(claims.get("client_id", "")))
    if issued_to is None or issued_to.disabled:
        return INACTIVE
    if await services.revocations.is_revoked(claims):
        return INACTIVE
    body: dict[str, Any] = {"active": True}
    # cnf: the key the token is bound to (RFC 8705 §3.2 x5t#S256), for the resource server to check.
    for name in ("scope", "client_id", "sub", "exp", "iat", "aud", "iss", "jti", "cnf"):
        if name in claims:
            body[name] = claims[name]
    # RFC 9449 §6.2: a DPoP-bound token is of type DPoP, and cnf.jkt tells the resource server its key.
    cnf = claims.get("cnf")
    body["token_type"] = "DPoP" if isinstance(cnf, dict) and "jkt" in cnf else "Bearer"
    return body


def _meant_for(caller: ClientInfo, claims: dict[str, Any]) -> bool:
    if claims.get("client_id") == caller.client_id:
        return True
    aud = claims.get("aud")
    if isinstance(aud, str):
        return aud in caller.audience
    return isinstance(aud, list) and any(a in caller.audience for a in aud if isinstance(a, str))


async def _refresh_token(services: Services, client: ClientInfo, token: str) -> dict[str, Any]:
    found = await services.tokens.get_refresh_token(digest(token))
    if found is None:
        return INACTIVE
    row, grant = found
    now = services.clock.now()
    if (
        row.client_id != client.client_id
        or row.consumed_at is not None
        or row.revoked_at is not None
        or row.expires_at <= now
        or grant.revoked_at is not None
        or grant.expires_at <= now
    ):
        return INACTIVE
    if grant.account_id is not None:
        account = await services.accounts.get(grant.account_id)
        if account is None or account.disabled_at is not None:
            return INACTIVE
    return {
        "active": True,
        "scope": " ".join(row.scopes),
        "client_id": row.client_id,
        "sub": grant.account_id or row.client_id,
        "exp": int(row.expires_at.timestamp()),
        "iat": int(row.created_at.timestamp()),
        "aud": list(grant.audience),
        "iss": services.settings.server.issuer,
        "token_type": "refresh_token",
    }
