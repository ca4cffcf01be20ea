"""Bearer access tokens on our own APIs (RFC 6750 §2.1, §3.1): signature, expiry, scope and grant revocation.

The same checks as UserInfo: a JWT access token we issued (RFC 9068), whose grant (``gid``) has not been
revoked, for an account that is still active, carrying the scope the endpoint requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from authserver.errors import InsufficientScope, InvalidToken, OAuthError
from authserver.services import Services
from authserver.storage.sql.models import Account


@dataclass(frozen=True)
class BearerIdentity:
    claims: dict[str, Any]
    account: Account
    scopes: frozenset[str]


def bearer_error(error: OAuthError, *, scope: str | None = None) -> OAuthError:
    value = f'Bearer error="{error.error}", error_description="{error.description}"'
    if scope:
        value += f', scope="{scope}"'
    error.headers["WWW-Authenticate"] = value
    return error


async def token_is_live(services: Services, claims: dict[str, Any]) -> bool:
    """False when the token's grant was revoked (logout, refresh-token reuse, code reuse)."""
    gid = claims.get("gid")
    if isinstance(gid, str):
        grant = await services.tokens.get_grant(gid)
        if grant is None or grant.revoked_at is not None:
            return False
    return True


async def authenticate_bearer(request: Request, services: Services, *, scope: str) -> BearerIdentity:
    """The person behind the request's ``Authorization: Bearer`` token, or an RFC 6750 error."""
    header = request.headers.get("authorization")
    if header is None:
        error = InvalidToken("An access token is required.")
        error.headers["WWW-Authenticate"] = 'Bearer realm="authserver"'
        raise error
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise bearer_error(InvalidToken("Malformed Authorization header."))
    claims = services.signer.verify_access_token(value.strip())
    if claims is None or not await token_is_live(services, claims):
        raise bearer_error(InvalidToken("The access token is invalid, expired or revoked."))
    scopes = frozenset(str(claims.get("scope", "")).split())
    if scope not in scopes:
        raise bearer_error(InsufficientScope(f"The access token lacks the {scope} scope."), scope=scope)
    account = await services.accounts.get(str(claims.get("sub")))
    if account is None or account.disabled_at is not None or claims.get("client_id") == claims.get("sub"):
        raise bearer_error(InvalidToken("The access token is invalid, expired or revoked."))
    return BearerIdentity(claims, account, scopes)
