"""The OpenAPI 3.1 description of the admin API, served at /admin/api/openapi.json.

Hand-written so it says exactly what the endpoints do; tests validate it (openapi-spec-validator) and
fuzz the API from it (schemathesis) expecting no 5xx.
"""

from __future__ import annotations

from typing import Any

SIGNING_ALGS = ["ES256", "RS256", "EdDSA"]
GRANTS = ["authorization_code", "refresh_token", "client_credentials"]
METHODS = [
    "client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "tls_client_auth",
    "self_signed_tls_client_auth", "none",
]
AUTH_SIGNING_ALGS = ["PS256", "ES256", "Ed25519", "RS256", "PS384", "PS512", "ES384", "ES512", "RS384", "RS512", "HS256", "HS384", "HS512"]

_uri_list = {"type": "array", "maxItems": 20, "items": {"type": "string", "minLength": 1, "maxLength": 2000}}
_nullable_ttl = {"type": ["integer", "null"], "minimum": 60, "maximum": 86400}
_nullable_long_ttl = {"type": ["integer", "null"], "minimum": 60, "maximum": 400 * 86400}

CLIENT_WRITABLE: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": 200},
    "token_endpoint_auth_method": {"type": "string", "enum": METHODS},
    "redirect_uris": _uri_list,
    "post_logout_redirect_uris": _uri_list,
    "grant_types": {"type": "array", "maxItems": 3, "items": {"type": "string", "enum": GRANTS}},
    "scopes": {"type": "array", "maxItems": 50, "items": {"type": "string", "minLength": 1, "maxLength": 100}},
    "audience": {"type": "array", "maxItems": 10, "items": {"type": "string", "minLength": 1, "maxLength": 2000}},
    "first_party": {"type": "boolean", "description": "Skip the consent page."},
    "require_mfa": {"type": "boolean"},
    "can_introspect": {"type": "boolean"},
    "dpop_bound_access_tokens": {"type": "boolean", "description": "Require a DPoP proof (RFC 9449) at every token request."},
    "signing_alg": {"type": ["string", "null"], "enum": [*SIGNING_ALGS, None]},
    "access_token_ttl": _nullable_ttl,
    "refresh_token_idle_ttl": _nullable_long_ttl,
    "refresh_token_absolute_ttl": _nullable_long_ttl,
    "rate_limit_per_minute": {"type": ["integer", "null"], "minimum": 1, "maximum": 1000000},
    "owner_email": {"type": ["string", "null"], "maxLength": 320, "description": "Told when a secret rotates by itself (never sent a secret)."},
    "notification_webhook": {
        "type": ["string", "null"], "maxLength": 2000,
        "description": "https URL that receives a rotated secret in a signed POST; setting it answers a new notification_webhook_secret once.",
    },
    # RFC 8705: tls_client_auth needs exactly one name; self_signed_tls_client_auth the certificate's key in jwks.
    **{name: {"type": ["string", "null"], "minLength": 1, "maxLength": 1000} for name in (
        "tls_client_auth_subject_dn", "tls_client_auth_san_dns", "tls_client_auth_san_uri", "tls_client_auth_san_ip",
        "tls_client_auth_san_email",
    )},
    "tls_client_certificate_bound_access_tokens": {"type": "boolean"},
    # JWT client authentication and PAR (docs/client-authentication.md).
    "jwks": {"type": ["object", "null"], "description": "Public JWK Set (RSA/EC/OKP, each key with a distinct kid, at most 10 keys, 16 KiB); private_key_jwt and self_signed_tls_client_auth."},
    "jwks_uri": {"type": ["string", "null"], "maxLength": 2000, "description": "https URL of the client's JWK Set; not with jwks."},
    "token_endpoint_auth_signing_alg": {"type": ["string", "null"], "enum": [*AUTH_SIGNING_ALGS, None]},
    "require_pushed_authorization_requests": {"type": "boolean", "description": "Authorization requests must come through /par (RFC 9126)."},
}

USER_WRITABLE: dict[str, Any] = {
    "email": {"type": ["string", "null"], "maxLength": 320},
    "email_verified": {"type": "boolean"},
    "name": {"type": ["string", "null"], "minLength": 1, "maxLength": 200},
    "locale": {"type": ["string", "null"], "enum": ["es", "en", None]},
    "roles": {"type": "array", "maxItems": 10, "items": {"type": "string", "minLength": 1, "maxLength": 64}},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    texts = {
        400: "Invalid input; `errors` lists each field.",
        401: "Missing, invalid or expired access token.",
        403: "The token lacks the admin scope (or, for a person, the admin role or MFA).",
        404: "No such resource.",
        409: "Conflict with the current state.",
        413: "Body too large.",
        415: "Body is not application/json.",
        501: "Not available in this build.",
        503: "A dependency (database, cache) is unavailable; retry.",
    }
    return {str(s): _json(_ref("Error"), texts[s]) for s in statuses}


_COMMON = (401, 403, 503)


def _page_params(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
        {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 1000000, "default": 0}},
        *extra,
    ]


def _strict_body(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    """A required JSON object body with exactly these properties."""
    schema = {"type": "object", "additionalProperties": False, "required": required, "properties": properties}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 64}}


def _invitation_schema(*, code: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "invitation_id": {"type": "string"},
        "state": {"type": "string", "enum": ["active", "used", "expired", "revoked"]},
        "max_uses": {"type": "integer"},
        "uses": {"type": "integer"},
        "note": {"type": ["string", "null"]},
        "created_by": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": "string", "format": "date-time"},
        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
    }
    if code:
        properties["code"] = {"type": "string", "description": "The invitation code, shown only now."}
    return {"type": "object", "required": sorted(set(properties) - {"note", "revoked_at"}), "properties": properties}


def _page_of(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["items", "limit", "offset", "next_offset"],
        "properties": {
            "items": {"type": "array", "items": _ref(item)},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
            "next_offset": {"type": ["integer", "null"]},
        },
    }


def openapi_document(issuer: str) -> dict[str, Any]:
    client_path = [_path_param("client_id")]
    user_path = [_path_param("account_id")]

    def user_action(summary: str, *errors: int) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "parameters": user_path,
                "responses": {"200": _json(_ref("User"), "The user after the change."), **_errors(404, *errors, *_COMMON)},
            }
        }

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "authserver admin API",
            "version": "1",
            "description": (
                "Manage clients, client secrets, users, roles and read security events. Every call needs a bearer access "
                "token of this server with the `admin` scope (client credentials of a client allowed that scope). "
                "Every change is recorded as a security event."
            ),
        },
        "servers": [{"url": issuer}],
        "security": [{"bearer": []}],
        "paths": {
            "/admin/api/clients": {
                "get": {
                    "summary": "List clients",
                    "parameters": _page_params(),
                    "responses": {"200": _json(_page_of("Client"), "A page of clients."), **_errors(400, *_COMMON)},
                },
                "post": {
                    "summary": "Create a client (its secret is shown once)",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ClientCreate")}}},
                    "responses": {
                        "201": _json(_ref("ClientWithSecret"), "The client; confidential clients get `client_secret` (only now)."),
                        **_errors(400, 409, 413, 415, *_COMMON),
                    },
                },
            },
            "/admin/api/clients/{client_id}": {
                "get": {
                    "summary": "Read a client",
                    "parameters": client_path,
                    "responses": {"200": _json(_ref("Client"), "The client."), **_errors(404, *_COMMON)},
                },
                "patch": {
                    "summary": "Update a client (only the fields given)",
                    "parameters": client_path,
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("ClientUpdate")}}},
                    "responses": {"200": _json(_ref("Client"), "The client after the change."), **_errors(400, 404, 413, 415, *_COMMON)},
                },
                "delete": {
                    "summary": "Delete a client (its grants and tokens go with it)",
                    "parameters": client_path,
                    "responses": {"204": {"description": "Deleted."}, **_errors(404, *_COMMON)},
                },
            },
            "/admin/api/clients/{client_id}/disable": {
                "post": {
                    "summary": "Disable a client (token requests refused; other instances follow within 10 s)",
                    "parameters": client_path,
                    "responses": {"200": _json(_ref("Client"), "The client."), **_errors(404, *_COMMON)},
                }
            },
            "/admin/api/clients/{client_id}/enable": {
                "post": {
                    "summary": "Enable a client",
                    "parameters": client_path,
                    "responses": {"200": _json(_ref("Client"), "The client."), **_errors(404, *_COMMON)},
                }
            },
            "/admin/api/clients/{client_id}/secrets": {
                "get": {
                    "summary": "List a client's secrets (metadata only, never the values)",
                    "parameters": client_path,
                    "responses": {"200": _json(_ref("SecretList"), "Secrets with their expiry."), **_errors(404, *_COMMON)},
                },
                "post": {
                    "summary": "Rotate: a new secret valid now; the previous ones stay valid for grace_seconds",
                    "parameters": client_path,
                    "requestBody": {"required": False, "content": {"application/json": {"schema": _ref("Rotation")}}},
                    "responses": {
                        "201": _json(_ref("RotatedSecret"), "The new secret (shown once)."),
                        **_errors(400, 404, 409, 413, 415, *_COMMON),
                    },
                },
            },
            "/admin/api/clients/{client_id}/secrets/{secret_id}": {
                "delete": {
                    "summary": "Revoke one secret now (not the calling client's own)",
                    "parameters": [*client_path, _path_param("secret_id")],
                    "responses": {"200": _json(_ref("Secret"), "The secret, revoked."), **_errors(404, 409, *_COMMON)},
                }
            },
            "/admin/api/clients/{client_id}/secrets/{secret_id}/reveal": {
                "post": {
                    "summary": "Take, once, a secret the rotation job issued and did not deliver; the old secret's grace starts",
                    "parameters": [*client_path, _path_param("secret_id")],
                    "responses": {"200": _json(_ref("RevealedSecret"), "The secret (shown once)."), **_errors(404, *_COMMON)},
                }
            },
            "/admin/api/users": {
                "get": {
                    "summary": "List users",
                    "parameters": _page_params(
                        {"name": "username", "in": "query", "schema": {"type": "string", "maxLength": 150}}
                    ),
                    "responses": {"200": _json(_page_of("User"), "A page of users."), **_errors(400, *_COMMON)},
                },
                "post": {
                    "summary": "Create a user",
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("UserCreate")}}},
                    "responses": {"201": _json(_ref("User"), "The user."), **_errors(400, 409, 413, 415, *_COMMON)},
                },
            },
            "/admin/api/users/{account_id}": {
                "get": {
                    "summary": "Read a user",
                    "parameters": user_path,
                    "responses": {"200": _json(_ref("User"), "The user."), **_errors(404, *_COMMON)},
                },
                "patch": {
                    "summary": "Update a user: roles, profile, disabled",
                    "parameters": user_path,
                    "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("UserUpdate")}}},
                    "responses": {"200": _json(_ref("User"), "The user after the change."), **_errors(400, 404, 413, 415, *_COMMON)},
                },
                "delete": {
                    "summary": "Delete a user (grants, refresh tokens, sessions and consents go with it)",
                    "parameters": user_path,
                    "responses": {"204": {"description": "Deleted."}, **_errors(404, *_COMMON)},
                },
            },
            "/admin/api/users/{account_id}/disable": user_action("Disable a user and end their browser sessions"),
            "/admin/api/users/{account_id}/enable": user_action("Enable a user"),
            "/admin/api/users/{account_id}/unlock": user_action("Lift a brute-force lock", 501),
            "/admin/api/users/{account_id}/reset-mfa": user_action("Forget the user's TOTP and backup codes"),
            "/admin/api/invitations": {
                "get": {
                    "summary": "Invitation codes for sign-up, newest first (never the codes)",
                    "parameters": _page_params(),
                    "responses": {"200": _json(_page_of("Invitation"), "A page of invitations."), **_errors(400, *_COMMON)},
                },
                "post": {
                    "summary": "Make an invitation code for sign-up; the code is shown once",
                    "requestBody": {"required": False, "content": {"application/json": {"schema": {
                        "type": "object", "additionalProperties": False, "properties": {
                            "max_uses": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 1},
                            "ttl_seconds": {"type": "integer", "minimum": 60, "maximum": 31536000,
                                            "description": "Default self_service.invitation_ttl (7 days)."},
                            "note": {"type": ["string", "null"], "minLength": 1, "maxLength": 200},
                        },
                    }}}},
                    "responses": {"201": _json(_ref("NewInvitation"), "The invitation and its code (shown once)."),
                                  **_errors(400, 413, 415, *_COMMON)},
                },
            },
            "/admin/api/invitations/{invitation_id}": {
                "get": {
                    "summary": "Read an invitation",
                    "parameters": [_path_param("invitation_id")],
                    "responses": {"200": _json(_ref("Invitation"), "The invitation."), **_errors(404, *_COMMON)},
                },
                "delete": {
                    "summary": "Revoke an invitation code (it stops working at once)",
                    "parameters": [_path_param("invitation_id")],
                    "responses": {"200": _json(_ref("Invitation"), "The revoked invitation."), **_errors(404, *_COMMON)},
                },
            },
            "/admin/api/roles": {
                "get": {
                    "summary": "Roles users may hold (the access token's roles claim)",
                    "responses": {"200": _json(_ref("RoleList"), "The configured roles."), **_errors(*_COMMON)},
                }
            },
            "/admin/api/events": {
                "get": {
                    "summary": "Security events, newest first",
                    "parameters": _page_params(
                        *(
                            {"name": n, "in": "query", "schema": {"type": "string", "maxLength": 64}}
                            for n in ("account_id", "client_id", "event", "outcome")
                        ),
                        {"name": "since", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                        {"name": "until", "in": "query", "schema": {"type": "string", "format": "date-time"}},
                    ),
                    "responses": {"200": _json(_page_of("Event"), "A page of events."), **_errors(400, *_COMMON)},
                }
            },
            "/admin/api/chaos": {
                "get": {
                    "summary": "Running chaos experiments (staging; 403 in production)",
                    "responses": {"200": _json(_ref("Chaos"), "The running experiments."), **_errors(*_COMMON)},
                },
                "post": {
                    "summary": "Start (or replace) a chaos experiment for duration_seconds (default 300, at most 3600)",
                    "requestBody": _strict_body(["experiment"], {
                        "experiment": {"type": "string", "enum": ["latency", "error_rate", "dependency_down", "edge_5xx"]},
                        "target": {"type": "string", "enum": ["database", "cache"], "description": "Required except for edge_5xx."},
                        "min_ms": {"type": "integer", "minimum": 0, "maximum": 10000},
                        "max_ms": {"type": "integer", "minimum": 1, "maximum": 10000},
                        "rate": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                        "duration_seconds": {"type": "integer", "minimum": 1, "maximum": 3600},
                    }),
                    "responses": {"200": _json(_ref("Chaos"), "The running experiments."), **_errors(400, 413, 415, *_COMMON)},
                },
                "delete": {
                    "summary": "Stop one experiment (?experiment=) or all of them",
                    "parameters": [{"name": "experiment", "in": "query", "schema": {"type": "string", "maxLength": 40}}],
                    "responses": {"200": _json(_ref("Chaos"), "The experiments still running."), **_errors(400, *_COMMON)},
                },
            },
            "/admin/api/emergency": {
                "get": {
                    "summary": "Emergency mode: on or off, since when, until when, by whom and why",
                    "responses": {"200": _json(_ref("Emergency"), "The current state."), **_errors(*_COMMON)},
                },
                "post": {
                    "summary": "Switch emergency mode on (for duration_seconds, default abuse.emergency_duration) or off",
                    "requestBody": _strict_body(["on"], {
                        "on": {"type": "boolean"},
                        "reason": {"type": "string", "minLength": 1, "maxLength": 300, "description": "Required when switching on."},
                        "duration_seconds": {"type": "integer", "minimum": 60, "maximum": 604800},
                    }),
                    "responses": {"200": _json(_ref("Emergency"), "The state after the change."), **_errors(400, 413, 415, *_COMMON)},
                },
            },
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An access token of this server with the admin scope.",
                }
            },
            "schemas": {
                "Invitation": _invitation_schema(code=False),
                "NewInvitation": _invitation_schema(code=True),
                "Chaos": {
                    "type": "object",
                    "required": ["experiments", "available"],
                    "properties": {
                        "experiments": {"type": "array", "items": {"type": "object"}},
                        "available": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "Emergency": {
                    "type": "object",
                    "required": ["on", "since", "until", "by", "reason", "automatic"],
                    "properties": {
                        "on": {"type": "boolean"},
                        "since": {"type": ["string", "null"], "format": "date-time"},
                        "until": {"type": ["string", "null"], "format": "date-time"},
                        "by": {"type": ["string", "null"]},
                        "reason": {"type": ["string", "null"]},
                        "automatic": {"type": "boolean"},
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "error_description": {"type": "string"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["field", "message"],
                                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                            },
                        },
                    },
                },
                "ClientCreate": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name", "client_type", "grant_types"],
                    "properties": {
                        "client_id": {"type": "string", "pattern": "^[A-Za-z0-9._-]{3,64}$"},
                        "client_type": {"type": "string", "enum": ["confidential", "public"]},
                        **CLIENT_WRITABLE,
                    },
                },
                "ClientUpdate": {"type": "object", "additionalProperties": False, "properties": CLIENT_WRITABLE},
                "Client": {
                    "type": "object",
                    "required": ["client_id", "name", "client_type", "grant_types", "scopes", "disabled"],
                    "properties": {
                        "client_id": {"type": "string"},
                        "client_type": {"type": "string"},
                        "disabled": {"type": "boolean"},
                        "client_secret_expires_at": {
                            "type": ["integer", "null"],
                            "description": "Confidential clients: when the last valid secret expires (seconds since the epoch; 0: never; RFC 7591 §3.2.1).",
                        },
                        **CLIENT_WRITABLE,
                    },
                },
                "ClientWithSecret": {
                    "allOf": [_ref("Client"), {"type": "object", "properties": {
                        "client_secret": {"type": "string"}, "notification_webhook_secret": {"type": "string"},
                    }}]
                },
                "Rotation": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "grace_seconds": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": 30 * 86400,
                            "description": "How long the previous secrets keep working (default admin.secret_rotation_grace, 24 h; 0 ends them now).",
                        },
                        "label": {
                            "type": "string", "pattern": "^[A-Za-z0-9._~-]{1,64}$",
                            "description": "Replace only this label's secrets (a new label adds a secret). Without it every secret is replaced.",
                        },
                    },
                },
                "RevealedSecret": {
                    "type": "object",
                    "required": ["client_id", "id", "label", "client_secret"],
                    "properties": {
                        "client_id": {"type": "string"}, "id": {"type": "integer"}, "label": {"type": "string"},
                        "client_secret": {"type": "string"},
                        "expires_at": {"type": ["string", "null"], "format": "date-time"},
                        "previous_secret_expires_at": {"type": ["string", "null"], "format": "date-time"},
                    },
                },
                "Secret": {
                    "type": "object",
                    "required": ["id", "label", "created_at", "expires_at", "valid"],
                    "properties": {
                        "id": {"type": "integer"},
                        "label": {"type": "string"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "expires_at": {"type": ["string", "null"], "format": "date-time"},
                        "valid": {"type": "boolean"},
                        "revoked_at": {"type": ["string", "null"], "format": "date-time"},
                        "rotated_at": {"type": ["string", "null"], "format": "date-time"},
                        "replaces": {"type": ["integer", "null"]},
                        "pending_delivery": {"type": "boolean"},
                        "last_used_at": {"type": ["string", "null"], "format": "date-time"},
                        "use_count": {"type": "integer"},
                    },
                },
                "RotatedSecret": {
                    "type": "object",
                    "required": ["client_id", "client_secret", "previous_secrets_expire_at", "grace_seconds"],
                    "properties": {
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"},
                        "previous_secrets_expire_at": {"type": "string", "format": "date-time"},
                        "grace_seconds": {"type": "integer"},
                        "id": {"type": "integer"},
                        "label": {"type": "string"},
                        "expires_at": {"type": ["string", "null"], "format": "date-time"},
                    },
                },
                "SecretList": {
                    "type": "object",
                    "required": ["items"],
                    "properties": {"items": {"type": "array", "items": _ref("Secret")}},
                },
                "UserCreate": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["username"],
                    "properties": {
                        "username": {"type": "string", "minLength": 1, "maxLength": 150},
                        "password": {"type": "string", "minLength": 1, "maxLength": 1024, "description": "Optional initial password."},
                        **USER_WRITABLE,
                    },
                },
                "UserUpdate": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {**USER_WRITABLE, "disabled": {"type": "boolean"}},
                },
                "User": {
                    "type": "object",
                    "required": ["account_id", "username", "roles", "mfa_enabled", "disabled", "created_at"],
                    "properties": {
                        "account_id": {"type": "string"},
                        "username": {"type": "string"},
                        "email": {"type": ["string", "null"]},
                        "email_verified": {"type": "boolean"},
                        "name": {"type": ["string", "null"]},
                        "locale": {"type": ["string", "null"]},
                        "roles": {"type": "array", "items": {"type": "string"}},
                        "mfa_enabled": {"type": "boolean"},
                        "disabled": {"type": "boolean"},
                        "disabled_at": {"type": ["string", "null"], "format": "date-time"},
                        "created_at": {"type": "string", "format": "date-time"},
                        "updated_at": {"type": "string", "format": "date-time"},
                    },
                },
                "RoleList": {
                    "type": "object",
                    "required": ["items"],
                    "properties": {
                        "items": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["name"],
                                "properties": {"name": {"type": "string"}, "description": {"type": "string"}},
                            },
                        }
                    },
                },
                "Event": {
                    "type": "object",
                    "required": ["id", "occurred_at", "event", "outcome"],
                    "properties": {
                        "id": {"type": "integer"},
                        "occurred_at": {"type": "string", "format": "date-time"},
                        "event": {"type": "string"},
                        "outcome": {"type": "string"},
                        "client_id": {"type": ["string", "null"]},
                        "account_id": {"type": ["string", "null"]},
                        "ip": {"type": ["string", "null"]},
                        "user_agent": {"type": ["string", "null"]},
                        "request_id": {"type": ["string", "null"]},
                        "details": {"type": "object"},
                    },
                },
            },
        },
    }
