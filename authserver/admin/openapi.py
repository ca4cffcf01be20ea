"""The OpenAPI 3.1 description of the admin API, served at /admin/api/openapi.json.

The bodies' schemas come from the models that validate them (``admin/models.py``); this module lists the
operations. Tests validate the document (openapi-spec-validator) and fuzz the API from it (schemathesis)
expecting no 5xx.
"""

from __future__ import annotations

from typing import Any

from authserver.admin.models import schemas


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


def _body(model: str, *, required: bool = True) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": _ref(model)}}}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1, "maxLength": 64}}


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
                    "requestBody": _body("ClientCreate"),
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
                    "requestBody": _body("ClientUpdate"),
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
                    "requestBody": _body("Rotation", required=False),
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
                    "requestBody": _body("UserCreate"),
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
                    "requestBody": _body("UserUpdate"),
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
                    "requestBody": _body("InvitationCreate", required=False),
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
                    "requestBody": _body("ChaosStart"),
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
                    "requestBody": _body("EmergencySwitch"),
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
            "schemas": schemas(),
        },
    }
