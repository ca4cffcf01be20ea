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

from authserver.admin.client_keys import (
    KEY_FIELDS,
    key_consistency_problems,
    read_key_metadata,
)
from authserver.admin.service import Actor, AdminService
from authserver.admin.validation import AdminError, has_control_characters
from authserver.errors import InvalidScope
from authserver.errors import RegistrationError as RegistrationError  # noqa: PLC0414 - re-exported
from authserver.protocol import certificates
from authserver.protocol.redirect_uri import REGISTRATION_RULE, is_acceptable_registration
from authserver.protocol.scopes import parse_scope, unique
from authserver.services import Services
from authserver.tokens.opaque import digest

REGISTRATION_SCOPE = "client_registration"
# The CLI signs initial access tokens for itself: a pseudo-client outside the registry.
REGISTRATION_CLIENT = "authserver-cli"

# RFC 7591 §2 metadata this server understands; anything else is ignored (§2, last paragraph).
SUPPORTED_GRANTS = ("authorization_code", "refresh_token", "client_credentials")
SUPPORTED_METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none")
# Admin field names as RFC 7591 §2 calls them, for error descriptions.
_RFC7591_NAMES = {"name": "client_name", "scopes": "scope", "token_endpoint_auth_method": "token_endpoint_auth_method"}



def _safe(text: str) -> str:
    """A description RFC 6749 §5.2 allows (a problem may quote the client's own kid): others become ``?``."""
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)


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
    methods = SUPPORTED_METHODS + (certificates.MTLS_METHODS if services.settings.mtls_enabled else ())
    if method not in methods:
        raise RegistrationError("invalid_client_metadata", f"token_endpoint_auth_method must be one of {', '.join(methods)}.")
    mtls = _mtls_metadata(data, method)
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
    # jwks / jwks_uri / token_endpoint_auth_signing_alg / require_pushed_authorization_requests (admin/client_keys.py),
    # read first for RFC 7591 error descriptions; the admin service validates the whole client again.
    key_values, problems = read_key_metadata(data, https_only=services.settings.server.production)
    problems += key_consistency_problems({**key_values, "token_endpoint_auth_method": method})
    if problems:
        raise RegistrationError("invalid_client_metadata", _safe(f"{problems[0]['field']} {problems[0]['message']}.")[:300])
    name = data.get("client_name", "Registered client")
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or has_control_characters(name):
        raise RegistrationError("invalid_client_metadata", "client_name must have 1-200 printable characters.")
    dpop_bound = data.get("dpop_bound_access_tokens", False)
    if not isinstance(dpop_bound, bool):
        raise RegistrationError("invalid_client_metadata", "dpop_bound_access_tokens must be a boolean (RFC 9449 section 5.2).")
    # The client itself is validated and written by the admin service, as for the admin API and the CLI.
    metadata = {
        "name": name, "client_type": "public" if public else "confidential",
        "token_endpoint_auth_method": method, "redirect_uris": redirect_uris, "grant_types": grant_types, "scopes": scopes,
        "first_party": False, "dpop_bound_access_tokens": dpop_bound,
        **{k: v for k, v in mtls.items() if v is not None}, **key_values,
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
        "dpop_bound_access_tokens": bool(created.get("dpop_bound_access_tokens")),
    }
    body.update({name: value for name, value in mtls.items() if value is not None})
    body.update({name: created.get(name) for name in KEY_FIELDS if created.get(name) not in (None, False)})
    if "client_secret" in created:
        body["client_secret"] = created["client_secret"]
        # RFC 7591 §3.2.1: when the secret expires, seconds since the epoch; 0 if it never does
        # (client_secrets.lifetime = 0). The rotation job replaces it before then (docs/operations.md).
        body["client_secret_expires_at"] = created.get("client_secret_expires_at") or 0
    return body


def _mtls_metadata(data: dict[str, Any], method: str) -> dict[str, Any]:
    """RFC 8705 §2.1.2 and §3.4 metadata (tls_client_auth_*, certificate-bound tokens), checked as a whole with
    the jwks that self_signed_tls_client_auth needs (certificates.check_metadata; jwks itself is read and
    checked with the other key metadata, admin/client_keys.py)."""
    values: dict[str, Any] = {}
    for name in certificates.NAME_FIELDS:
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 1000 or has_control_characters(value)):
            raise RegistrationError("invalid_client_metadata", f"{name} must be a string of 1-1000 printable characters.")
        values[name] = value
    bound = data.get("tls_client_certificate_bound_access_tokens", False)
    if not isinstance(bound, bool):
        raise RegistrationError("invalid_client_metadata", "tls_client_certificate_bound_access_tokens must be true or false.")
    values["tls_client_certificate_bound_access_tokens"] = bound
    problems = certificates.check_metadata({**values, "jwks": data.get("jwks"), "token_endpoint_auth_method": method})
    if problems:
        field, message = problems[0]
        raise RegistrationError("invalid_client_metadata", _safe(f"{field} {message}."))
    return values
