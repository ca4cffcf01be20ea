"""Discovery: OpenID Connect Discovery 1.0 §3 and RFC 8414 metadata, advertising exactly what is built."""

from __future__ import annotations

import json
from typing import Any

from authserver.endpoints._http import OAUTH_JSON, mark_channel
from authserver.endpoints.prepared import PreparedDocument
from authserver.keys.rotation import configured_algorithms
from authserver.mfa.service import ACR_MFA, ACR_PASSWORD
from authserver.settings import Settings


def build_metadata(settings: Settings, grant_types: list[str]) -> dict[str, Any]:
    issuer = settings.server.issuer
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        "userinfo_endpoint": f"{issuer}/userinfo",
        "jwks_uri": f"{issuer}/jwks",
        "revocation_endpoint": f"{issuer}/revoke",
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint": f"{issuer}/introspect",
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "end_session_endpoint": f"{issuer}/logout",
        "registration_endpoint": f"{issuer}/register",
        "scopes_supported": list(settings.tokens.scopes),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grant_types,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(configured_algorithms(settings)),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
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
    }


def metadata_endpoint(metadata: dict[str, Any]) -> PreparedDocument:
    """Serves prepared bytes: the document only changes with the settings."""
    body = json.dumps(metadata, separators=(",", ":")).encode()
    return mark_channel(PreparedDocument(body, {"Cache-Control": "public, max-age=3600", "Access-Control-Allow-Origin": "*"}), OAUTH_JSON)
