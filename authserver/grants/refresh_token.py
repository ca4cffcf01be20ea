"""Refresh token grant (RFC 6749 §6) with rotation on every use and reuse detection (RFC 9700 §4.14.2).

Policy: a refresh token works once. Presenting a consumed one — by an attacker, by another client, or by a
client racing itself — revokes the whole family (every refresh token of the grant and the access tokens
that carry its ``gid``), with one exception, the grace period (``tokens.refresh_token_grace_period``,
30 s; 0 is strict rotation): the same client presenting the token again shortly after its rotation, while
the successor is unused, gets the same answer back (tokens/refresh_grace.py). A family never forks: at
most one refresh token of it is ever live.

Scopes: each refresh issues the family's scope as far as the client is still allowed it (its current
``scopes``), on both paths: a scope removed from a client is gone from the next refresh of every token
issued before (``allowed_scopes``).

DPoP (RFC 9449 §5): a public client's family issued with a DPoP proof is bound to that key
(``grants.dpop_jkt``); every refresh needs a proof of the same key. Another key or no proof is
``invalid_grant`` and changes nothing: the family is *not* revoked, because whoever presents a stolen
bound token without the key must not be able to end the owner's sign-in (the token is useless to them
anyway). For the same reason the key is checked before reuse detection: only a request that proves the
key can revoke a bound family by presenting a consumed token. Confidential clients' refresh tokens are not
bound (§5); their access tokens are.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from authserver.errors import InvalidGrant, InvalidRequest, InvalidScope
from authserver.grants.base import TokenBinding, issue_user_tokens, require_grant_type
from authserver.protocol.scopes import parse_scope
from authserver.services import Services
from authserver.storage.errors import AlreadyConsumed, NotFound
from authserver.storage.sql.clients import ClientInfo
from authserver.storage.sql.models import Grant
from authserver.storage.sql.tokens import NewRefreshToken
from authserver.tokens.opaque import REFRESH_PREFIX, digest, new_secret
from authserver.tokens.refresh_grace import Presentation, RefreshGrace, normalise_scope

log = logging.getLogger("authserver.grants")


class RefreshTokenGrant:
    GRANT_TYPE: ClassVar[str] = "refresh_token"
    PARAMETERS: ClassVar[frozenset[str]] = frozenset({"refresh_token", "scope"})

    def __init__(self, services: Services) -> None:
        self._services = services
        self._grace = RefreshGrace(
            period=services.settings.tokens.refresh_token_grace_period, cache=services.cache,
            encryptor=services.encryptor, tokens=services.tokens, clock=services.clock,
        )

    async def create_token_response(
        self, client: ClientInfo, params: dict[str, str], *, ip: str | None = None, binding: TokenBinding | None = None
    ) -> dict[str, Any]:
        """``binding``: the key the new tokens are bound to (DPoP proof's ``jkt``, client certificate), if any;
        a retry in the grace period must be made with the same key as the rotation it repeats."""
        require_grant_type(client, self.GRANT_TYPE)
        value = params.get("refresh_token")
        if value is None:
            raise InvalidRequest("Missing refresh_token.")
        services = self._services
        if not value.startswith(REFRESH_PREFIX):
            raise InvalidGrant("The refresh token is invalid.")
        # RFC 6749 §6: a requested scope narrows this access token only; the new refresh token keeps the
        # scope originally granted (the family's), so a later refresh without scope gets all of it back.
        requested = parse_scope(params.get("scope"))
        presented = Presentation(
            digest(value), client.client_id, normalise_scope(requested),
            jkt=binding.jkt if binding is not None else None, x5t_s256=binding.x5t_s256 if binding is not None else None,
        )
        if services.fast_path is not None and params.get("scope") is None:
            issued = await self._rotate_in_one_statement(client, value, presented, binding)
            if issued is not None:
                return issued
            # Nothing was changed: the general path below tells reuse from an unknown or dead token.
        found = await services.tokens.get_refresh_token(presented.token_digest)
        if found is None:
            raise InvalidGrant("The refresh token is invalid.")
        row, grant = found
        if row.client_id != client.client_id:
            # RFC 6749 §10.4: the token is bound to the client it was issued to. A consumed one in another
            # client's hands has leaked: that is reuse (RFC 9700 §4.14.2), never forgiven.
            if row.consumed_at is not None and grant.revoked_at is None:
                await self._reuse(client, grant, ip, token_client_id=row.client_id)
            raise InvalidGrant("The refresh token is invalid.")
        await self._check_family_key(client, grant.dpop_jkt, binding, ip=ip, grant_id=grant.grant_id)
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
            rotated_at = services.clock.now()
            await services.tokens.rotate_refresh_token(
                row.token_digest,
                new=NewRefreshToken(digest(new_value), client.refresh_token_idle_ttl or settings.refresh_token_idle_ttl),
                grant_id=grant.grant_id,
                revoke_on_reuse=not self._grace.enabled,  # with a grace period, _presented_again decides
            )
        except AlreadyConsumed as reused:
            return await self._presented_again(client, grant, presented, reused, ip)
        except NotFound:
            raise InvalidGrant("The refresh token is invalid.") from None

        body = issue_user_tokens(
            services, client, account, grant, scopes=scopes, nonce=None, refresh_token=new_value, binding=binding
        )
        await self._grace.remember(presented, successor_digest=digest(new_value), body=body, rotated_at=rotated_at)
        return body

    async def _presented_again(
        self, client: ClientInfo, grant: Grant, presented: Presentation, reused: AlreadyConsumed, ip: str | None
    ) -> dict[str, Any]:
        """A consumed token of this client: the answer it lost (grace period), or reuse."""
        answer = await self._grace.recall(presented, consumed_at=reused.consumed_at)
        if answer is not None:
            await self._services.events.record(
                "refresh_token_retry", "success", client_id=client.client_id, account_id=grant.account_id, ip=ip,
                grant_id=grant.grant_id,
            )
            return answer
        await self._reuse(client, grant, ip)
        raise InvalidGrant("The refresh token was already used.")

    async def _reuse(self, client: ClientInfo, grant: Grant, ip: str | None, *, token_client_id: str | None = None) -> None:
        """Revoke the family: refresh tokens in the database, access tokens everywhere (deny list)."""
        services = self._services
        await services.revocations.revoke_grant(grant.grant_id, reason="refresh_token_reuse")
        log.warning("refresh token reuse by client %s; grant %s revoked", client.client_id, grant.grant_id)
        extra = {"token_client_id": token_client_id} if token_client_id is not None else {}
        await services.events.record(
            "refresh_token_reuse", "failure", client_id=client.client_id, account_id=grant.account_id, ip=ip,
            grant_id=grant.grant_id, **extra,
        )

    async def _check_family_key(
        self, client: ClientInfo, family_jkt: str | None, binding: TokenBinding | None, *, ip: str | None, grant_id: str
    ) -> None:
        """RFC 9449 §5: a DPoP-bound family refreshes only with a proof of its key (module docstring)."""
        if family_jkt is None:
            return
        presented = binding.jkt if binding is not None else None
        if presented is not None and hmac.compare_digest(presented.encode(), family_jkt.encode()):
            return
        await self._services.events.record(
            "dpop_key_mismatch", "failure", client_id=client.client_id, ip=ip, grant_id=grant_id,
            proof=presented is not None,
        )
        raise InvalidGrant("The refresh token is bound to another DPoP key.")

    async def _rotate_in_one_statement(
        self, client: ClientInfo, value: str, presented: Presentation, binding: TokenBinding | None
    ) -> dict[str, Any] | None:
        """PostgreSQL: claim, check and rotate in one round trip (storage/sql/fastpath.py); None if refused."""
        services = self._services
        assert services.fast_path is not None
        new_value = new_secret(REFRESH_PREFIX)
        now = services.clock.now()
        rotated = await services.fast_path.rotate_refresh_token(
            presented.token_digest, client_id=client.client_id, new_digest=digest(new_value),
            idle_ttl=client.refresh_token_idle_ttl or services.settings.tokens.refresh_token_idle_ttl, now=now,
            dpop_jkt=binding.jkt if binding is not None else None,
        )
        if rotated is None:
            return None
        # The answer carries what the tokens need of both the person and the family.
        body = issue_user_tokens(
            services, client, rotated, rotated, scopes=allowed_scopes(client, rotated.scopes), nonce=None,
            refresh_token=new_value, binding=binding,
        )
        await self._grace.remember(presented, successor_digest=digest(new_value), body=body, rotated_at=now)
        return body


def allowed_scopes(client: ClientInfo, granted: Sequence[str]) -> list[str]:
    """The family's scopes the client may still have, in the family's order."""
    allowed = set(client.scopes)
    return [scope for scope in granted if scope in allowed]
