"""The bearer-token gate: the one check every bearer-protected endpoint of ours goes through.

RFC 6750 (how the token travels and how a refusal reads), RFC 9068 §4 (what a resource server checks of
a JWT access token), RFC 7009 §2 / RFC 7662 §4 (revocation is honoured by the resource).

An endpoint declares what it needs as a :class:`Protection` and calls :func:`gate` (or is wrapped by
:func:`protected`, which also tags it so the route-table test can find it). The gate answers the token's
:class:`Bearer` or raises ``InvalidToken`` (401) / ``InsufficientScope`` (403) with a ``WWW-Authenticate``
challenge. In order, cheapest first:

1. the token: ``Authorization: Bearer`` (or, where allowed, the ``access_token`` form field, §2.2; never both),
   or ``Authorization: DPoP`` (RFC 9449 §7.1);
2. signature with our keys, ``typ`` = ``at+jwt``, ``iss``, ``exp`` (``TokenSigner.verify_access_token``);
   the sender constraint: a DPoP-bound token (``cnf.jkt``) only as ``DPoP`` with a valid ``DPoP`` proof of
   that key for this request (``htm``, ``htu``, ``ath``; jti single use), a bearer token never as ``DPoP``
   (:func:`check_dpop`);
3. ``aud`` names one of the endpoint's own audiences (a token for a data API is not a token for us);
   a token bound to a TLS certificate (``cnf.x5t#S256``, RFC 8705 §3) comes with that certificate;
4. the per-token rate limit, if the endpoint has one (before any SQL, so a leaked token cannot hammer it);
5. the scope;
6. the deny list (the token's ``jti``, its grant ``gid``, its person, its client; shared by every instance);
7. the client: still registered and enabled (pseudo-clients outside the registry are named by the endpoint);
8. for a person's token (one with ``gid``): the grant still live and the account still enabled; a
   person-only endpoint refuses a client's own token and vice versa.

Every refusal of steps 2, 3 and 6-8 reads the same ("invalid, expired or revoked"), so a caller learns
nothing about which check failed.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from authserver.endpoints._guard import client_ip
from authserver.endpoints._http import FORM_TYPE, read_form
from authserver.endpoints._mtls import client_certificate
from authserver.errors import (
    InsufficientScope,
    InvalidDpopProof,
    InvalidRequest,
    InvalidToken,
    OAuthError,
    UseDpopNonce,
)
from authserver.services import Services
from authserver.storage.sql.clients import ClientInfo
from authserver.storage.sql.models import Account
from authserver.tokens.opaque import digest

REFUSED = "The access token is invalid, expired or revoked."
# The attribute :func:`protected` sets on an endpoint (read by the route-table test).
PROTECTION_ATTRIBUTE = "authserver_protection"


@dataclass(frozen=True)
class Protection:
    """What a protected endpoint accepts.

    ``audiences`` are paths under the issuer: ``""`` is the issuer itself (the audience of our own APIs),
    ``"/userinfo"`` the UserInfo endpoint, ``"/register"`` dynamic registration.
    """

    scope: str
    audiences: tuple[str, ...] = ("",)
    # Who may hold the token: a person (a token with ``gid``) and/or a client for itself (client credentials).
    person: bool = True
    client: bool = False
    # Clients that are not in the registry and whose tokens the endpoint still accepts (the CLI's
    # registration tokens); any other client must be registered and enabled.
    pseudo_clients: frozenset[str] = frozenset()
    # RFC 6750 §2.2: the token may come as the ``access_token`` form field (UserInfo only).
    form_field: bool = False
    # A rate-limit scope (abuse.SCOPES) counted per token before any SQL.
    rate_scope: str | None = None
    realm: str = "authserver"

    def audience_values(self, issuer: str) -> frozenset[str]:
        return frozenset(issuer + path for path in self.audiences)


@dataclass(frozen=True)
class Bearer:
    """A token that passed the gate: its claims, its client (None for a pseudo-client) and person (or None)."""

    token: str
    claims: dict[str, Any]
    scopes: frozenset[str]
    client: ClientInfo | None
    account: Account | None

    @property
    def person(self) -> Account:
        """The person behind the token; only for endpoints whose protection refuses clients' own tokens."""
        if self.account is None:
            raise InvalidToken(REFUSED)
        return self.account

    @property
    def client_id(self) -> str:
        return str(self.claims.get("client_id", ""))


def challenge(error: OAuthError, protection: Protection) -> OAuthError:
    """Add the RFC 6750 §3 ``WWW-Authenticate`` challenge to an error of the gate."""
    value = f'Bearer realm="{protection.realm}"'
    if error.error != "invalid_request" or error.description:
        value += f', error="{error.error}", error_description="{error.description}"'
    if isinstance(error, InsufficientScope):
        value += f', scope="{protection.scope}"'
    error.headers["WWW-Authenticate"] = value
    return error


def audiences_of(claims: dict[str, Any]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


async def presented_token(request: Request, protection: Protection) -> str:
    """The bearer token of the request (RFC 6750 §2.1 header, §2.2 form body where allowed)."""
    header = request.headers.get("authorization")
    token = None
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() not in ("bearer", "dpop") or not value.strip():
            raise challenge(InvalidToken("Malformed Authorization header."), protection)
        token = value.strip()
    if (
        protection.form_field
        and request.method == "POST"
        and request.headers.get("content-type", "").split(";")[0].strip().lower() == FORM_TYPE
    ):
        form = await read_form(request)
        if "access_token" in form:
            if token is not None:
                raise challenge(InvalidRequest("Send the access token once."), protection)
            token = form["access_token"]
    if not token:
        error = InvalidToken("An access token is required.")
        error.headers["WWW-Authenticate"] = f'Bearer realm="{protection.realm}", {dpop_challenge_params(request)}'
        raise error
    return token


async def gate(request: Request, services: Services, protection: Protection) -> Bearer:
    """The request's bearer token checked for this endpoint (module docstring), or an RFC 6750 error."""
    token = await presented_token(request, protection)
    refused = challenge(InvalidToken(REFUSED), protection)
    claims = services.signer.verify_access_token(token)
    if claims is None:
        raise refused
    await check_dpop(request, services, protection, token, claims)
    issuer = services.settings.server.issuer
    if protection.audience_values(issuer).isdisjoint(audiences_of(claims)):
        raise challenge(InvalidToken(REFUSED, debug="audience"), protection)
    _check_certificate_binding(request, claims, protection)
    client_id = claims.get("client_id")
    if not isinstance(client_id, str) or not client_id:
        raise refused
    if protection.rate_scope is not None:
        jti = claims.get("jti")
        await services.limiter.check(
            protection.rate_scope, jti if isinstance(jti, str) and len(jti) <= 128 else digest(token),
            ip=client_ip(request), client_id=client_id[:64],
        )
    scopes = frozenset(str(claims.get("scope", "")).split())
    if protection.scope not in scopes:
        raise challenge(InsufficientScope(f"The access token lacks the {protection.scope} scope."), protection)
    if await services.revocations.is_revoked(claims):
        raise refused
    client = None
    if client_id not in protection.pseudo_clients:
        client = await services.clients.get(client_id)
        if client is None or client.disabled:
            raise refused
    account = await _person(services, claims, protection, refused)
    return Bearer(token, claims, scopes, client, account)


class ResourceDpopProofError(InvalidDpopProof):
    status_code = 401  # RFC 9449 §7.1: at a resource the proof's errors are 401 with a DPoP challenge


class ResourceUseDpopNonce(UseDpopNonce):
    status_code = 401  # RFC 9449 §9


def dpop_challenge_params(request: Request) -> str:
    """``DPoP algs="…"`` (RFC 9449 §7.1): the proof algorithms we accept."""
    services: Services = request.app.state.services
    return f'DPoP algs="{" ".join(services.dpop.algorithms)}"'


def dpop_challenge(error: OAuthError, request: Request) -> OAuthError:
    value = dpop_challenge_params(request)
    if error.description:
        value += f', error="{error.error}", error_description="{error.description}"'
    error.headers["WWW-Authenticate"] = value
    return error


async def check_dpop(request: Request, services: Services, protection: Protection, token: str, claims: dict[str, Any]) -> None:
    """RFC 9449 §7: a token bound to a DPoP key (``cnf.jkt``) comes as ``Authorization: DPoP`` with a proof
    of that key for this request and token; an unbound token never comes as ``DPoP``. Refusals of the token
    itself read like every other (``invalid_token``); a bad proof is ``invalid_dpop_proof``."""
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    header = request.headers.get("authorization") or ""
    as_dpop = header.partition(" ")[0].lower() == "dpop"
    if not as_dpop:
        if jkt is not None:
            raise dpop_challenge(InvalidToken(REFUSED, debug="DPoP-bound token presented as a bearer token"), request)
        return
    if not isinstance(jkt, str):
        raise dpop_challenge(InvalidToken(REFUSED, debug="unbound token presented with the DPoP scheme"), request)
    url = services.settings.server.issuer + request.url.path
    try:
        proof = await services.dpop.check(request.headers.getlist("dpop"), method=request.method, url=url, access_token=token)
    except UseDpopNonce as error:
        raise dpop_challenge(_with_headers(ResourceUseDpopNonce(error.description), error), request) from None
    except InvalidDpopProof as error:
        raise dpop_challenge(ResourceDpopProofError(error.description), request) from None
    if proof is None:
        raise dpop_challenge(ResourceDpopProofError("A DPoP proof is required with a DPoP-bound token."), request)
    if not hmac.compare_digest(proof.jkt.encode(), jkt.encode()):
        raise dpop_challenge(InvalidToken(REFUSED, debug="DPoP proof of another key"), request)


def _with_headers(error: OAuthError, source: OAuthError) -> OAuthError:
    error.headers.update(source.headers)
    return error


def _check_certificate_binding(request: Request, claims: dict[str, Any], protection: Protection) -> None:
    """RFC 8705 §3: a token bound to a certificate (``cnf.x5t#S256``) is honoured only on a request that
    presents that certificate (mutual TLS); a stolen bound token is refused like any invalid one."""
    cnf = claims.get("cnf")
    bound = cnf.get("x5t#S256") if isinstance(cnf, dict) else None
    if bound is None:
        return
    certificate = client_certificate(request)
    if certificate is None or not isinstance(bound, str) or not hmac.compare_digest(bound, certificate.thumbprint):
        raise challenge(InvalidToken(REFUSED, debug="certificate binding"), protection)


async def _person(services: Services, claims: dict[str, Any], protection: Protection, refused: OAuthError) -> Account | None:
    gid = claims.get("gid")
    if gid is None:
        # A client's own token (client credentials): its subject is the client.
        if not protection.client or claims.get("sub") != claims.get("client_id"):
            raise refused
        return None
    if not protection.person or not isinstance(gid, str):
        raise refused
    grant = await services.tokens.get_grant(gid)
    if grant is None or grant.revoked_at is not None:
        raise refused
    account = await services.accounts.get(str(claims.get("sub")))
    if account is None or account.disabled_at is not None or account.account_id != grant.account_id:
        raise refused
    return account


Endpoint = Callable[[Request], Awaitable[Response]]
# A protection, or how to make one from the running server's settings (the admin scope is configurable).
Declared = Protection | Callable[[Services], Protection]


def protected(protection: Declared) -> Callable[[Endpoint], Endpoint]:
    """Tag an endpoint with its protection (read by the route-table test) without changing it."""

    def tag(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, PROTECTION_ATTRIBUTE, protection)
        return endpoint

    return tag


def protection_of(endpoint: object, services: Services) -> Protection | None:
    declared = getattr(endpoint, PROTECTION_ATTRIBUTE, None)
    if declared is None:
        return None
    return declared if isinstance(declared, Protection) else declared(services)


__all__ = ["Bearer", "Protection", "audiences_of", "challenge", "check_dpop", "gate", "protected", "protection_of"]
