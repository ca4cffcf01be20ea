"""What every grant shares: client authentication, scope and audience checks, and the token response."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar, Protocol

from authserver.errors import InvalidClient, InvalidScope, InvalidTarget, UnauthorizedClient
from authserver.grants import client_assertion, mtls
from authserver.protocol.certificates import ClientCertificate
from authserver.protocol.client_auth import PresentedCredentials
from authserver.protocol.scopes import parse_scope
from authserver.services import Services
from authserver.storage.sql.clients import ClientInfo

# Scopes that only make sense with a person behind the token.
USER_SCOPES = frozenset({"openid", "profile", "email", "offline_access", "mfa:manage"})


@dataclass(frozen=True)
class TokenBinding:
    """The key an access token is bound to (its ``cnf`` claim): a DPoP key (RFC 9449 §6, ``jkt``) or the
    client's TLS certificate (RFC 8705 §3.1, ``x5t#S256``). A token with a DPoP key is of type ``DPoP``."""

    jkt: str | None = None
    x5t_s256: str | None = None

    def cnf(self) -> dict[str, str] | None:
        cnf = {name: value for name, value in (("jkt", self.jkt), ("x5t#S256", self.x5t_s256)) if value is not None}
        return cnf or None

    @property
    def token_type(self) -> str:
        return "DPoP" if self.jkt is not None else "Bearer"


class TokenGrant(Protocol):
    GRANT_TYPE: ClassVar[str]
    # Parameters the grant reads; anything else in the request is ignored (RFC 6749 §3.1).
    PARAMETERS: ClassVar[frozenset[str]]

    # ``ip`` is the client's address (endpoints._guard.client_ip), for the security events a grant records;
    # ``binding`` the key the access token is bound to, if any (decided by the token endpoint).
    async def create_token_response(
        self, client: ClientInfo, params: dict[str, str], *, ip: str | None = None, binding: TokenBinding | None = None
    ) -> dict[str, Any]: ...


Authenticator = Callable[[Services, ClientInfo, PresentedCredentials], Awaitable[ClientInfo]]


async def _no_authentication(services: Services, client: ClientInfo, presented: PresentedCredentials) -> ClientInfo:
    if presented.method != "none":
        raise InvalidClient("Public clients do not authenticate with a secret.")
    return client


def _shared_secret(method: str) -> Authenticator:
    """client_secret_basic / client_secret_post: the secret's digest against every current secret."""

    async def authenticate(services: Services, client: ClientInfo, presented: PresentedCredentials) -> ClientInfo:
        if presented.method != method:
            raise InvalidClient(WRONG_METHOD)
        now = services.clock.now()
        if presented.secret is None:
            raise InvalidClient()
        used = client.match_secret(presented.secret, now)
        if used is None:
            # The secret may have been rotated on another instance moments ago: look past the cache once.
            fresh = await services.clients.refresh(client.client_id)
            if fresh is None or fresh.disabled or fresh.token_endpoint_auth_method != method:
                raise InvalidClient()
            used = fresh.match_secret(presented.secret, now)
            if used is None:
                raise InvalidClient()
            client = fresh
        # Counted in memory, written in batches (storage/sql/clients.SecretUsage): no write per request.
        services.clients.usage.record(used.id)
        return client

    return authenticate


async def _certificate(services: Services, client: ClientInfo, presented: PresentedCredentials) -> ClientInfo:
    """tls_client_auth / self_signed_tls_client_auth (RFC 8705 §2, grants/mtls.py)."""
    error = mtls.authenticate(client, presented, presented.certificate)
    if error is not None:
        raise error
    return client


WRONG_METHOD = "The client did not use its registered authentication method."
# The registered token_endpoint_auth_method → how the client proves itself (RFC 6749 §2.3, RFC 7591 §2).
# A client authenticates with its registered method only; anything else is invalid_client. Other methods
CLIENT_AUTHENTICATORS: dict[str, Authenticator] = {
    "client_secret_basic": _shared_secret("client_secret_basic"),
    "client_secret_post": _shared_secret("client_secret_post"),
    "private_key_jwt": client_assertion.private_key_jwt,
    "client_secret_jwt": client_assertion.client_secret_jwt,
    "tls_client_auth": _certificate,
    "self_signed_tls_client_auth": _certificate,
    "none": _no_authentication,
}


async def authenticate_client(
    services: Services, presented: PresentedCredentials, *, certificate: ClientCertificate | None = None
) -> ClientInfo:
    """RFC 6749 §2.3: the client is known, enabled, and proves itself with the method it registered for.

    ``certificate`` is the TLS client certificate of the request, if any (RFC 8705, grants/mtls.py).
    """
    if certificate is not None:
        presented = replace(presented, certificate=certificate)
    client = await services.clients.get(presented.client_id)
    try:
        if client is None or client.disabled:
            raise InvalidClient()
        authenticator = CLIENT_AUTHENTICATORS.get(client.token_endpoint_auth_method)
        if authenticator is None:
            raise InvalidClient("This client's authentication method is not available.")
        return await authenticator(services, client, presented)
    except InvalidClient as error:
        if presented.method == "client_secret_basic":
            error.headers["WWW-Authenticate"] = 'Basic realm="authserver", error="invalid_client"'
        raise


def require_grant_type(client: ClientInfo, grant_type: str) -> None:
    if grant_type not in client.grant_types:
        raise UnauthorizedClient(f"This client may not use the {grant_type} grant.")


def check_scopes(services: Services, client: ClientInfo, requested: str | None, *, default: Iterable[str]) -> list[str]:
    """Requested scopes, all known and allowed for the client; the default when none are requested."""
    scopes = parse_scope(requested) or list(default)
    known = services.settings.tokens.scopes
    refused = [s for s in scopes if s not in client.scopes or s not in known]
    if refused:
        raise InvalidScope("The requested scope is not allowed for this client.", debug=f"refused {refused}")
    return scopes


def check_audience(services: Services, client: ClientInfo, resource: str | None) -> list[str]:
    """RFC 8707: `resource` names one of the client's audiences; otherwise the client's default audience."""
    if resource is None:
        return list(client.audience) or [services.settings.server.issuer]
    if resource not in client.audience:
        raise InvalidTarget("The requested resource is not allowed for this client.")
    return [resource]


def check_user_audience(services: Services, client: ClientInfo, resource: str | None, scopes: list[str]) -> list[str]:
    """The audience of a person's grant: as :func:`check_audience`, plus the UserInfo endpoint when ``openid``
    is granted and no ``resource`` narrowed the token (OIDC Core §5.3: that token is the UserInfo token).

    Our other APIs (admin, MFA) stay out of reach of a token for a data API: their audience is the issuer,
    which a token lists only when the client's registered audience does.
    """
    audience = check_audience(services, client, resource)
    issuer = services.settings.server.issuer
    if resource is None and "openid" in scopes and issuer not in audience:
        audience.append(f"{issuer}/userinfo")
    return audience


class Person(Protocol):
    """What a token needs of the person: an ``Account`` row, or the fast path's ``Rotated`` answer."""

    @property
    def account_id(self) -> str: ...
    @property
    def roles(self) -> list[str]: ...


class Family(Protocol):
    """What a token needs of its grant: a ``Grant`` row, or the fast path's ``Rotated`` answer."""

    @property
    def grant_id(self) -> str: ...
    @property
    def audience(self) -> list[str]: ...
    @property
    def auth_time(self) -> datetime | None: ...
    @property
    def amr(self) -> list[str]: ...
    @property
    def acr(self) -> str | None: ...


def user_claims(account: Person, *, auth_time: datetime | None, amr: list[str], acr: str | None) -> dict[str, Any]:
    """Extra access-token claims for a person: CMIPRO roles and how they authenticated."""
    claims: dict[str, Any] = {"roles": list(account.roles)}
    if auth_time is not None:
        claims["auth_time"] = int(auth_time.timestamp())
    if amr:
        claims["amr"] = list(amr)
    if acr:
        claims["acr"] = acr
    return claims


def bound_claims(binding: TokenBinding | None) -> dict[str, Any]:
    """The ``cnf`` claim of a bound access token; nothing for a bearer token."""
    cnf = binding.cnf() if binding is not None else None
    return {"cnf": cnf} if cnf else {}


def token_response(
    access_token: str, expires_in: int, scopes: list[str], *, token_type: str = "Bearer", **extra: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": access_token,
        "token_type": token_type,
        "expires_in": expires_in,
        "scope": " ".join(scopes),
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def issue_user_tokens(
    services: Services,
    client: ClientInfo,
    account: Person,
    grant: Family,
    *,
    scopes: list[str],
    nonce: str | None,
    refresh_token: str | None,
    binding: TokenBinding | None = None,
) -> dict[str, Any]:
    """The token response for a person's grant: an access token carrying the grant id (``gid``) and, with
    ``openid``, an ID token (OIDC Core §3.1.3.3; on refresh without ``nonce``, §12.2)."""
    settings = services.settings.tokens
    issued = services.signer.access_token(
        client_id=client.client_id,
        subject=account.account_id,
        scopes=scopes,
        audience=list(grant.audience),
        ttl=client.access_token_ttl or settings.access_token_ttl,
        alg=client.signing_alg,
        extra=user_claims(account, auth_time=grant.auth_time, amr=list(grant.amr), acr=grant.acr)
        | {"gid": grant.grant_id}
        | bound_claims(binding),
    )
    id_token = None
    if "openid" in scopes:
        id_token = services.signer.id_token(
            client_id=client.client_id,
            subject=account.account_id,
            ttl=settings.id_token_ttl,
            auth_time=grant.auth_time,
            nonce=nonce,
            amr=list(grant.amr),
            acr=grant.acr,
            access_token=issued.token,
            alg=client.signing_alg,
        )
    token_type = binding.token_type if binding is not None else "Bearer"
    return token_response(
        issued.token, issued.expires_in, scopes, token_type=token_type, refresh_token=refresh_token, id_token=id_token
    )
