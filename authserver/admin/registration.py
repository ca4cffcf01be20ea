"""Dynamic client registration (RFC 7591) for the team's own apps, behind an initial access token (§3).

Initial access tokens are either configured (``admin.registration_tokens``, compared as SHA-256 digests in
constant time) or issued by ``authserver registration issue-token``: a short-lived access token signed by
this server for the CLI's pseudo-client ``authserver-cli`` with audience ``<issuer>/register`` and scope
``client_registration``, so every instance accepts it without shared state; it goes through the
bearer-token gate like any other (endpoints/bearer.py), so ``/revoke``-style deny entries apply to it. Registered clients are never
first-party (the consent page is shown) and never get the admin scope.
"""

from __future__ import annotations

import hmac
from typing import Any

from authserver.admin.service import Actor, AdminService
from authserver.admin.validation import AdminError
from authserver.errors import InvalidScope
from authserver.errors import RegistrationError as RegistrationError  # noqa: PLC0414 - re-exported
from authserver.protocol.redirect_uri import REGISTRATION_RULE, is_acceptable_registration
from authserver.protocol.scopes import parse_scope, unique
from authserver.services import Services
from authserver.tokens.opaque import digest

REGISTRATION_SCOPE = "client_registration"
# The CLI signs initial access tokens for itself: a pseudo-client outside the registry.
REGISTRATION_CLIENT = "authserver-cli"

# RFC 7591 §2 metadata this server understands; anything else is ignored (§2, last paragraph).
SUPPORTED_GRANTS = ("authorization_code", "refresh_token", "client_credentials")
SUPPORTED_METHODS = ("client_secret_basic", "client_secret_post", "none")
# Admin field names as RFC 7591 §2 calls them, for error descriptions.
_RFC7591_NAMES = {"name": "client_name", "scopes": "scope", "token_endpoint_auth_method": "token_endpoint_auth_method"}



def registration_audience(services: Services) -> str:
    return f"{services.settings.server.issuer}/register"


def issue_initial_access_token(services: Services, *, ttl: int) -> str:
    """A signed, short-lived initial access token (the key store must be loaded)."""
    issued = services.signer.access_token(
        client_id=REGISTRATION_CLIENT, subject=REGISTRATION_CLIENT, scopes=[REGISTRATION_SCOPE],
        audience=[registration_audience(services)], ttl=ttl,
    )
    return issued.token


def is_configured_token(services: Services, token: str) -> bool:
    """Whether ``token`` is one of ``admin.registration_tokens`` (constant time over all of them)."""
    if len(token) > 8192:
        return False
    presented = digest(token)
    ok = False
    for configured in services.settings.admin.registration_tokens:
        ok |= hmac.compare_digest(presented, digest(configured))
    return ok


def _strings(data: dict[str, Any], name: str, *, max_items: int = 20) -> list[str] | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > max_items or not all(isinstance(v, str) and 0 < len(v) <= 2000 for v in value):
        raise RegistrationError("invalid_client_metadata", f"{name} must be a list of strings.")
    return unique(value)


async def register_client(services: Services, data: Any, *, token_kind: str, ip: str | None = None) -> dict[str, Any]:
    """Validate RFC 7591 metadata, create the client, answer the §3.2.1 client information response."""
    if not isinstance(data, dict):
        raise RegistrationError("invalid_client_metadata", "The request body must be a JSON object.")
    redirect_uris = _strings(data, "redirect_uris") or []
    for uri in redirect_uris:
        if not is_acceptable_registration(uri):
            raise RegistrationError("invalid_redirect_uri", f"Redirect URIs must be {REGISTRATION_RULE}.")
    method = data.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in SUPPORTED_METHODS:
        raise RegistrationError("invalid_client_metadata", f"token_endpoint_auth_method must be one of {', '.join(SUPPORTED_METHODS)}.")
    grant_types = _strings(data, "grant_types", max_items=3) or ["authorization_code"]
    if not set(grant_types) <= set(SUPPORTED_GRANTS):
        raise RegistrationError("invalid_client_metadata", f"grant_types must be among {', '.join(SUPPORTED_GRANTS)}.")
    response_types = _strings(data, "response_types", max_items=3)
    if response_types is None:
        response_types = ["code"] if "authorization_code" in grant_types else []
    if set(response_types) - {"code"} or (("code" in response_types) != ("authorization_code" in grant_types)):
        raise RegistrationError("invalid_client_metadata", "response_types code goes with grant_types authorization_code (RFC 7591 section 2.1).")
    if "authorization_code" in grant_types and not redirect_uris:
        raise RegistrationError("invalid_redirect_uri", "authorization_code needs at least one redirect URI.")
    if "refresh_token" in grant_types and "authorization_code" not in grant_types:
        raise RegistrationError("invalid_client_metadata", "refresh_token needs authorization_code.")
    public = method == "none"
    if public and "client_credentials" in grant_types:
        raise RegistrationError("invalid_client_metadata", "client_credentials needs a confidential client.")
    allowed = services.settings.admin.registration_scopes
    scope = data.get("scope")
    if scope is None:
        scopes = list(allowed) if "authorization_code" in grant_types else [s for s in allowed if s not in {"openid", "profile", "email", "offline_access"}]
    elif isinstance(scope, str) and len(scope) <= 2000:
        # RFC 7591 §2: space-separated scope tokens (RFC 6749 §3.3); a repeated one counts once.
        try:
            scopes = parse_scope(scope)
        except InvalidScope:
            raise RegistrationError("invalid_client_metadata", "scope must be space-separated scope tokens.") from None
        if not scopes or not set(scopes) <= set(allowed):
            raise RegistrationError("invalid_client_metadata", "scope names a scope that registered clients may not have.")
    else:
        raise RegistrationError("invalid_client_metadata", "scope must be a space-separated string.")
    # The client itself is validated and written by the admin service, as for the admin API and the CLI.
    metadata = {
        "name": data.get("client_name", "Registered client"), "client_type": "public" if public else "confidential",
        "token_endpoint_auth_method": method, "redirect_uris": redirect_uris, "grant_types": grant_types, "scopes": scopes,
        "first_party": False,
    }
    try:
        created = await AdminService(services).create_client(
            metadata, actor=Actor(via=f"registration:{token_kind}"), event="client_registered", ip=ip
        )
    except AdminError as error:
        fields = sorted({problem["field"].partition("[")[0] for problem in error.errors})
        code = "invalid_redirect_uri" if "redirect_uris" in fields else "invalid_client_metadata"
        names = ", ".join(_RFC7591_NAMES.get(f, f) for f in fields) or "the client metadata"
        raise RegistrationError(code, f"Refused: {names}.") from None
    body: dict[str, Any] = {
        "client_id": created["client_id"],
        "client_id_issued_at": int(services.clock.now().timestamp()),
        "client_name": created["name"],
        "redirect_uris": list(created["redirect_uris"]),
        "grant_types": list(created["grant_types"]),
        "response_types": response_types,
        "token_endpoint_auth_method": created["token_endpoint_auth_method"],
        "scope": " ".join(created["scopes"]),
    }
    if "client_secret" in created:
        body["client_secret"] = created["client_secret"]
        body["client_secret_expires_at"] = 0
    return body
