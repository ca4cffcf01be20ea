"""Authorization code grant (RFC 6749 §4.1.3) with PKCE S256 (RFC 7636 §4.5-4.6) and OIDC ID tokens.

Validation comes first and changes nothing; then one transaction claims the code and creates its
grant. A code presented a second time revokes everything issued from it (RFC 6749 §4.1.2).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from authserver.errors import InvalidGrant, InvalidRequest
from authserver.grants.base import TokenBinding, issue_user_tokens, require_grant_type
from authserver.protocol.pkce import verify_s256
from authserver.services import Services
from authserver.storage.errors import AlreadyConsumed, Expired
from authserver.storage.sql.clients import ClientInfo
from authserver.storage.sql.lifecycle import OFFLINE_SCOPE
from authserver.storage.sql.models import AuthorizationCode
from authserver.storage.sql.tokens import NewRefreshToken
from authserver.tokens.opaque import CODE_PREFIX, REFRESH_PREFIX, digest, new_secret

log = logging.getLogger("authserver.grants")


class AuthorizationCodeGrant:
    GRANT_TYPE: ClassVar[str] = "authorization_code"
    PARAMETERS: ClassVar[frozenset[str]] = frozenset({"code", "redirect_uri", "code_verifier"})

    def __init__(self, services: Services) -> None:
        self._services = services

    async def create_token_response(
        self, client: ClientInfo, params: dict[str, str], *, ip: str | None = None, binding: TokenBinding | None = None
    ) -> dict[str, Any]:
        require_grant_type(client, self.GRANT_TYPE)
        code_value = params.get("code")
        if code_value is None:
            raise InvalidRequest("Missing code.")
        verifier = params.get("code_verifier")
        if verifier is None:
            # Pinned: a missing verifier is invalid_grant, as the conformance suite (FAPI 2.0) expects.
            raise InvalidGrant("Missing code_verifier.")
        services = self._services
        now = services.clock.now()
        code = await services.tokens.get_code(digest(code_value)) if code_value.startswith(CODE_PREFIX) else None
        if code is None or code.client_id != client.client_id:
            raise InvalidGrant("The authorization code is invalid.")
        if code.consumed_at is not None:
            await self._revoke_reused(code.grant_id, client.client_id, code.account_id, ip)
            raise InvalidGrant("The authorization code has already been used.")
        if code.expires_at <= now:
            raise InvalidGrant("The authorization code has expired.")
        if not _redirect_uri_ok(client, code.redirect_uri, list(code.scopes), params.get("redirect_uri")):
            raise InvalidGrant("redirect_uri does not match the authorization request.")
        if not verify_s256(verifier, code.code_challenge):
            raise InvalidGrant("The code_verifier does not match the code_challenge.")
        if code.dpop_jkt is not None and (binding is None or binding.jkt != code.dpop_jkt):
            # RFC 9449 §10: the code was bound to a DPoP key at /authorize (dpop_jkt).
            raise InvalidGrant("The authorization code is bound to another DPoP key.")
        account = await services.accounts.get(code.account_id)
        if account is None or account.disabled_at is not None:
            raise InvalidGrant("The account is not active.")

        settings = services.settings.tokens
        absolute_ttl = await self._absolute_ttl(client, code)
        refresh_value = new_secret(REFRESH_PREFIX) if "refresh_token" in client.grant_types else None
        refresh = (
            NewRefreshToken(digest(refresh_value), client.refresh_token_idle_ttl or settings.refresh_token_idle_ttl)
            if refresh_value
            else None
        )
        try:
            grant = await services.tokens.redeem_code(
                code,
                absolute_ttl=absolute_ttl,
                refresh=refresh,
                # RFC 9449 §5: a public client's refresh tokens are bound to its DPoP key, a confidential one's are not.
                dpop_jkt=binding.jkt if binding is not None and client.is_public and refresh is not None else None,
            )
        except AlreadyConsumed as reused:
            await self._revoke_reused(reused.grant_id, client.client_id, code.account_id, ip)
            raise InvalidGrant("The authorization code has already been used.") from None
        except Expired:
            raise InvalidGrant("The authorization code has expired.") from None

        return issue_user_tokens(
            services, client, account, grant, scopes=list(code.scopes), nonce=code.nonce, refresh_token=refresh_value,
            binding=binding,
        )

    async def _revoke_reused(self, grant_id: str | None, client_id: str, account_id: str, ip: str | None) -> None:
        if grant_id is not None:
            # Refresh tokens and access tokens of the first redemption (deny list).
            await self._services.revocations.revoke_grant(grant_id, reason="code_reuse")
        log.warning("authorization code reused by client %s; grant %s revoked", client_id, grant_id)
        await self._services.events.record(
            "code_reuse", "failure", client_id=client_id, account_id=account_id, ip=ip, grant_id=grant_id
        )

    async def _absolute_ttl(self, client: ClientInfo, code: AuthorizationCode) -> int:
        """Lifetime of the family's refresh tokens. With offline_access, the client's long lifetime; without
        it the family is bound to the browser session: it ends with it (logout revokes it) at the latest."""
        services = self._services
        absolute = client.refresh_token_absolute_ttl or services.settings.tokens.refresh_token_absolute_ttl
        if OFFLINE_SCOPE in code.scopes or code.session_digest is None:
            return absolute
        now = services.clock.now()
        session = await services.lifecycle.get_session(code.session_digest)
        if session is None or session.ended_at is not None or session.expires_at <= now:
            raise InvalidGrant("The sign-in session of this authorization code has ended.")
        return max(1, min(absolute, int((session.expires_at - now).total_seconds())))


def _redirect_uri_ok(client: ClientInfo, code_uri: str, scopes: list[str], presented: str | None) -> bool:
    """RFC 6749 §4.1.3: identical to the authorization request's. /authorize lets a plain OAuth request omit
    it only when one URI is registered (§3.1.2.3), so the token request may omit it then too; OIDC always
    requires it (Core §3.1.2.1). We do not record whether it was sent: omitting it where the code can only
    have gone to the single registered URI gives an attacker nothing."""
    if presented is not None:
        return presented == code_uri
    return "openid" not in scopes and client.redirect_uris == (code_uri,)


def new_code_value() -> str:
    return new_secret(CODE_PREFIX)
