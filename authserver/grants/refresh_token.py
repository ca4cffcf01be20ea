"""Refresh token grant (RFC 6749 §6) with rotation on every use and reuse detection (RFC 9700 §4.14.2).

Policy (strict): a refresh token works once. Presenting a consumed one — by an attacker, or by a client
racing itself — revokes the whole family (every refresh token of the grant and the access tokens that
carry its ``gid``). Two parallel refreshes therefore never fork a family: exactly one wins, the other
gets ``invalid_grant`` and the family is revoked.

Scopes: each refresh issues the family's scope as far as the client is still allowed it (its current
``scopes``), on both paths: a scope removed from a client is gone from the next refresh of every token
issued before (``allowed_scopes``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from authserver.errors import InvalidGrant, InvalidRequest, InvalidScope
from authserver.grants.base import issue_user_tokens, require_grant_type
from authserver.protocol.scopes import parse_scope
from authserver.services import Services
from authserver.storage.errors import AlreadyConsumed, NotFound
from authserver.storage.sql.clients import ClientInfo
from authserver.storage.sql.tokens import NewRefreshToken
from authserver.tokens.opaque import REFRESH_PREFIX, digest, new_secret

log = logging.getLogger("authserver.grants")


class RefreshTokenGrant:
    GRANT_TYPE: ClassVar[str] = "refresh_token"
    PARAMETERS: ClassVar[frozenset[str]] = frozenset({"refresh_token", "scope"})

    def __init__(self, services: Services) -> None:
        self._services = services

    async def create_token_response(
        self, client: ClientInfo, params: dict[str, str], *, ip: str | None = None
    ) -> dict[str, Any]:
        require_grant_type(client, self.GRANT_TYPE)
        value = params.get("refresh_token")
        if value is None:
            raise InvalidRequest("Missing refresh_token.")
        services = self._services
        if not value.startswith(REFRESH_PREFIX):
            raise InvalidGrant("The refresh token is invalid.")
        if services.fast_path is not None and params.get("scope") is None:
            issued = await self._rotate_in_one_statement(client, value)
            if issued is not None:
                return issued
            # Nothing was changed: the general path below tells reuse from an unknown or dead token.
        found = await services.tokens.get_refresh_token(digest(value))
        if found is None:
            raise InvalidGrant("The refresh token is invalid.")
        row, grant = found
        if row.client_id != client.client_id:
            # RFC 6749 §10.4: the token is bound to the client it was issued to.
            raise InvalidGrant("The refresh token is invalid.")
        # RFC 6749 §6: a requested scope narrows this access token only; the new refresh token keeps the
        # scope originally granted (the family's), so a later refresh without scope gets all of it back.
        requested = parse_scope(params.get("scope"))
        still = allowed_scopes(client, grant.scopes)
        if requested and not set(requested) <= set(still):
            raise InvalidScope("The requested scope exceeds the scope originally granted.")
        scopes = requested or still
        account = await services.accounts.get(grant.account_id) if grant.account_id else None
        if account is None or account.disabled_at is not None:
            raise InvalidGrant("The account is not active.")

        settings = services.settings.tokens
        new_value = new_secret(REFRESH_PREFIX)
        try:
            await services.tokens.rotate_refresh_token(
                row.token_digest,
                new=NewRefreshToken(digest(new_value), client.refresh_token_idle_ttl or settings.refresh_token_idle_ttl),
                grant_id=grant.grant_id,
            )
        except AlreadyConsumed:
            # The store revoked the family's refresh tokens; deny its access tokens everywhere too.
            await services.revocations.revoke_grant(grant.grant_id, reason="refresh_token_reuse")
            log.warning("refresh token reuse by client %s; grant %s revoked", client.client_id, grant.grant_id)
            await services.events.record(
                "refresh_token_reuse", "failure", client_id=client.client_id, account_id=grant.account_id, ip=ip,
                grant_id=grant.grant_id,
            )
            raise InvalidGrant("The refresh token was already used.") from None
        except NotFound:
            raise InvalidGrant("The refresh token is invalid.") from None

        return issue_user_tokens(services, client, account, grant, scopes=scopes, nonce=None, refresh_token=new_value)

    async def _rotate_in_one_statement(self, client: ClientInfo, value: str) -> dict[str, Any] | None:
        """PostgreSQL: claim, check and rotate in one round trip (storage/sql/fastpath.py); None if refused."""
        services = self._services
        assert services.fast_path is not None
        new_value = new_secret(REFRESH_PREFIX)
        rotated = await services.fast_path.rotate_refresh_token(
            digest(value), client_id=client.client_id, new_digest=digest(new_value),
            idle_ttl=client.refresh_token_idle_ttl or services.settings.tokens.refresh_token_idle_ttl, now=services.clock.now(),
        )
        if rotated is None:
            return None
        # The answer carries what the tokens need of both the person and the family.
        scopes = allowed_scopes(client, rotated.scopes)
        return issue_user_tokens(services, client, rotated, rotated, scopes=scopes, nonce=None, refresh_token=new_value)


def allowed_scopes(client: ClientInfo, granted: Sequence[str]) -> list[str]:
    """The family's scopes the client may still have, in the family's order."""
    allowed = set(client.scopes)
    return [scope for scope in granted if scope in allowed]
