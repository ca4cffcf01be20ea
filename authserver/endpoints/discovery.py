"""Discovery: OpenID Connect Discovery 1.0 §3 and RFC 8414 metadata, advertising exactly what is built."""

from __future__ import annotations

import json
from typing import Any

from authserver.endpoints._http import OAUTH_JSON, mark_channel
from authserver.endpoints.prepared import PreparedDocument
from authserver.grants.base import CLIENT_AUTHENTICATORS
from authserver.grants.client_assertion import CLIENT_SECRET_JWT_ALGS, PRIVATE_KEY_JWT_ALGS
from authserver.keys.rotation import configured_algorithms
from authserver.mfa.service import ACR_MFA, ACR_PASSWORD
from authserver.protocol.certificates import MTLS_METHODS
from authserver.settings import Settings
from authserver.storage.sql.clients import AUTH_METHODS


def auth_methods(settings: Settings) -> list[str]:
    """The client authentication methods that work: registered ones with an authenticator, the mTLS ones only
    while clients can present certificates (serve asks for them or a proxy forwards them)."""
    return [
        method for method in AUTH_METHODS
        if method in CLIENT_AUTHENTICATORS and (settings.mtls_enabled or method not in MTLS_METHODS)
    ]


def auth_signing_algs(methods: list[str]) -> list[str]:
    algs = list(PRIVATE_KEY_JWT_ALGS) if "private_key_jwt" in methods else []
    return algs + (list(CLIENT_SECRET_JWT_ALGS) if "client_secret_jwt" in methods else [])


def build_metadata(settings: Settings, grant_types: list[str]) -> dict[str, Any]:
    issuer = settings.server.issuer
    methods = auth_methods(settings)
    confidential_methods = [m for m in methods if m != "none"]
    algs = auth_signing_algs(methods)
    return _with_mtls(settings, {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks",
        "revocation_endpoint": f"{issuer}/revoke",
        "revocation_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_signing_alg_values_supported": algs,
        "introspection_endpoint": f"{issuer}/introspect",
        "introspection_endpoint_auth_methods_supported": confidential_methods,
        "introspection_endpoint_auth_signing_alg_values_supported": algs,
        "end_session_endpoint": f"{issuer}/logout",
        "registration_endpoint": f"{issuer}/register",
        "scopes_supported": list(settings.tokens.scopes),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grant_types,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(configured_algorithms(settings)),
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": algs,
        # RFC 9126 §5: pushed authorization requests, required of every client when par.required.
        "pushed_authorization_request_endpoint": f"{issuer}/par",
        "require_pushed_authorization_requests": settings.par.required,
        "code_challenge_methods_supported": ["S256"],
        "dpop_signing_alg_values_supported": list(settings.dpop.signing_algs),
        "authorization_response_iss_parameter_supported": True,
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash",
            "name", "preferred_username", "locale", "updated_at", "email", "email_verified",
        ],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "prompt_values_supported": ["none", "login", "consent"],
        "ui_locales_supported": ["es", "en"],
        "acr_values_supported": [ACR_PASSWORD, ACR_MFA],
        "claim_types_supported": ["normal"],
        # Not registered metadata (hence the prefix): the signed revocation feed for offline verifiers
        # (authserver/tokens/feed.py, docs/verifying-tokens.md).
        "cmipro_revocation_feed_uri": f"{issuer}/revocations",
    })


def _with_mtls(settings: Settings, metadata: dict[str, Any]) -> dict[str, Any]:
    """RFC 8705 metadata when clients can present certificates (serve asks for them or a proxy forwards them):
    certificate-bound tokens (§3.3) and the endpoints' mTLS aliases (§5); the two methods come with
    :func:`auth_methods`."""
    if not settings.mtls_enabled:
        return metadata
    metadata["tls_client_certificate_bound_access_tokens"] = True
    base = settings.server.mtls_base_url or settings.server.issuer
    metadata["mtls_endpoint_aliases"] = {
        f"{name}_endpoint": f"{base}/{path}"
        for name, path in (("token", "token"), ("revocation", "revoke"), ("introspection", "introspect"),
                           ("userinfo", "userinfo"), ("registration", "register"),
                           ("pushed_authorization_request", "par"))
    }
    return metadata


def metadata_endpoint(metadata: dict[str, Any]) -> PreparedDocument:
    """Serves prepared bytes: the document only changes with the settings."""
    body = json.dumps(metadata, separators=(",", ":")).encode()
    return mark_channel(PreparedDocument(body, {"Cache-Control": "public, max-age=3600", "Access-Control-Allow-Origin": "*"}), OAUTH_JSON)
