"""Client credentials grant (RFC 6749 §4.4): confidential clients only, no refresh token (§4.4.3).

The hot path of machine-to-machine traffic: the client comes from the in-process registry cache and
nothing is written, so issuing costs one signature.
"""

from __future__ import annotations

from typing import Any, ClassVar

from authserver.errors import InvalidScope, UnauthorizedClient
from authserver.grants.base import (
    USER_SCOPES,
    TokenBinding,
    bound_claims,
    check_audience,
    check_scopes,
    require_grant_type,
    token_response,
)
from authserver.services import Services
from authserver.storage.sql.clients import ClientInfo


class ClientCredentialsGrant:
    GRANT_TYPE: ClassVar[str] = "client_credentials"
    PARAMETERS: ClassVar[frozenset[str]] = frozenset({"scope", "resource"})

    def __init__(self, services: Services) -> None:
        self._services = services

    async def create_token_response(
        self, client: ClientInfo, params: dict[str, str], *, ip: str | None = None, binding: TokenBinding | None = None
    ) -> dict[str, Any]:
        require_grant_type(client, self.GRANT_TYPE)
        if client.is_public:
            raise UnauthorizedClient("Public clients cannot use client_credentials.")
        default = [s for s in client.scopes if s not in USER_SCOPES]
        scopes = check_scopes(self._services, client, params.get("scope"), default=default)
        if USER_SCOPES & set(scopes):
            raise InvalidScope("User scopes cannot be granted to a client acting for itself.")
        audience = check_audience(self._services, client, params.get("resource"))
        settings = self._services.settings.tokens
        issued = self._services.signer.access_token(
            client_id=client.client_id,
            subject=client.client_id,
            scopes=scopes,
            audience=audience,
            ttl=client.access_token_ttl or settings.access_token_ttl,
            alg=client.signing_alg,
            extra=bound_claims(binding) or None,
        )
        token_type = binding.token_type if binding is not None else "Bearer"
        return token_response(issued.token, issued.expires_in, scopes, token_type=token_type)
