"""The JSON admin API under /admin/api (described by /admin/api/openapi.json).

Bearer access tokens go through the gate (endpoints/bearer.py: signature, audience = the issuer, the
admin scope ``admin.scope``, the deny list, the client and the person still enabled), then:
- the client must still be allowed the admin scope (checked on every call);
- a token issued to a person (authorization code flow) needs the ``admin`` role and MFA in ``amr``.
Errors: 401 ``invalid_token`` / 403 ``insufficient_scope`` with ``WWW-Authenticate`` (RFC 6750 §3),
400 ``invalid_request`` with per-field ``errors``, 404 ``not_found``, 409 ``conflict``.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from authserver.admin import invitations as invitation_admin
from authserver.admin import operations
from authserver.admin.openapi import openapi_document
from authserver.admin.service import Actor, AdminService
from authserver.admin.validation import AdminError, has_control_characters, invalid
from authserver.endpoints._http import admin_json, json_response
from authserver.endpoints.bearer import Protection, gate, protected
from authserver.services import Services

log = logging.getLogger("authserver.admin")

MFA_AMR = frozenset({"mfa", "otp", "hwk", "swk"})
MAX_JSON_BYTES = 64 * 1024

Handler = Callable[[Request, AdminService, Actor], Awaitable[Response]]


def protection(services: Services) -> Protection:
    """The admin API's gate: the admin scope, audience the issuer, a person's or a client's own token."""
    return Protection(scope=services.settings.admin.scope, person=True, client=True, realm="authserver-admin")


async def authenticate(request: Request, services: Services) -> Actor:
    bearer = await gate(request, services, protection(services))
    scope = services.settings.admin.scope
    if bearer.client is None or scope not in bearer.client.scopes:
        raise AdminError(401, "invalid_token", "The client of this token may no longer use the admin API.")
    if bearer.account is None:
        return Actor(client_id=bearer.client.client_id)
    # A person acting through a client: must still be an admin who signed in with MFA.
    if "admin" not in bearer.account.roles or not MFA_AMR & set(bearer.claims.get("amr") or []):
        raise AdminError(403, "insufficient_scope", "The admin API needs the admin role and a sign-in with MFA.")
    return Actor(client_id=bearer.client.client_id, account_id=bearer.account.account_id)


async def read_json(request: Request) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise AdminError(415, "unsupported_media_type", "The request body must be application/json.")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_JSON_BYTES:
                raise AdminError(413, "too_large", "The request body is too large.")
    except ClientDisconnect:
        raise invalid("The request body was not received.") from None
    if not body:
        return {}
    try:
        return json.loads(bytes(body))
    except (ValueError, RecursionError):
        raise invalid("The request body is not valid JSON.") from None


async def read_optional_json(request: Request) -> Any:
    if not request.headers.get("content-type") and request.headers.get("content-length", "0") in {"", "0"}:
        return {}
    return await read_json(request)


def admin_endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Authentication, then the handler, inside the admin channel's boundary (``_http.admin_json``)."""

    @protected(protection)
    @admin_json
    @functools.wraps(handler)
    async def endpoint(request: Request) -> Response:
        actor = await authenticate(request, request.app.state.services)
        return await handler(request, request.app.state.admin, actor)

    return endpoint


def _query(request: Request) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key in params:
            raise invalid(f"The parameter {key[:40]} is repeated.")
        if has_control_characters(key) or has_control_characters(value):
            raise invalid("The request has invalid parameters.", [{"field": key[:40], "message": "must not contain control characters"}])
        params[key] = value
    return params


def _path(request: Request, name: str) -> str:
    value = str(request.path_params[name])
    if not 0 < len(value) <= 64 or has_control_characters(value):
        raise AdminError(404, "not_found", "No such resource.")
    return value


# -- endpoints ---------------------------------------------------------------------------------------------


@admin_endpoint
async def clients(request: Request, admin: AdminService, actor: Actor) -> Response:
    if request.method == "POST":
        return json_response(await admin.create_client(await read_json(request), actor=actor), 201)
    return json_response(await admin.list_clients(_query(request)))


@admin_endpoint
async def client(request: Request, admin: AdminService, actor: Actor) -> Response:
    client_id = _path(request, "client_id")
    if request.method == "PATCH":
        return json_response(await admin.update_client(client_id, await read_json(request), actor=actor))
    if request.method == "DELETE":
        await admin.delete_client(client_id, actor=actor)
        return Response(status_code=204, headers={"Cache-Control": "no-store"})
    return json_response(await admin.get_client(client_id))


@admin_endpoint
async def client_disable(request: Request, admin: AdminService, actor: Actor) -> Response:
    return json_response(await admin.set_client_disabled(_path(request, "client_id"), True, actor=actor))


@admin_endpoint
async def client_enable(request: Request, admin: AdminService, actor: Actor) -> Response:
    return json_response(await admin.set_client_disabled(_path(request, "client_id"), False, actor=actor))


@admin_endpoint
async def client_secrets(request: Request, admin: AdminService, actor: Actor) -> Response:
    client_id = _path(request, "client_id")
    if request.method == "POST":
        return json_response(await admin.rotate_secret(client_id, await read_optional_json(request), actor=actor), 201)
    return json_response(await admin.list_secrets(client_id))


@admin_endpoint
async def client_secret(request: Request, admin: AdminService, actor: Actor) -> Response:
    """DELETE: revoke one secret now."""
    return json_response(await admin.revoke_secret(_path(request, "client_id"), _path(request, "secret_id"), actor=actor))


@admin_endpoint
async def client_secret_reveal(request: Request, admin: AdminService, actor: Actor) -> Response:
    """POST: take, once, a secret the rotation job could not deliver."""
    return json_response(await admin.reveal_secret(_path(request, "client_id"), _path(request, "secret_id"), actor=actor))


@admin_endpoint
async def users(request: Request, admin: AdminService, actor: Actor) -> Response:
    if request.method == "POST":
        return json_response(await admin.create_user(await read_json(request), actor=actor), 201)
    return json_response(await admin.list_users(_query(request)))


@admin_endpoint
async def user(request: Request, admin: AdminService, actor: Actor) -> Response:
    account_id = _path(request, "account_id")
    if request.method == "PATCH":
        return json_response(await admin.update_user(account_id, await read_json(request), actor=actor))
    if request.method == "DELETE":
        await admin.delete_user(account_id, actor=actor)
        return Response(status_code=204, headers={"Cache-Control": "no-store"})
    return json_response(await admin.get_user(account_id))


@admin_endpoint
async def user_action(request: Request, admin: AdminService, actor: Actor) -> Response:
    account_id = _path(request, "account_id")
    action = request.url.path.rsplit("/", 1)[-1]
    if action == "disable":
        return json_response(await admin.set_user_disabled(account_id, True, actor=actor))
    if action == "enable":
        return json_response(await admin.set_user_disabled(account_id, False, actor=actor))
    if action == "unlock":
        return json_response(await admin.unlock_user(account_id, actor=actor))
    if action == "reset-mfa":
        return json_response(await admin.reset_mfa(account_id, actor=actor))
    raise AdminError(404, "not_found", "No such action.")


@admin_endpoint
async def invitations(request: Request, admin: AdminService, actor: Actor) -> Response:
    services: Services = request.app.state.services
    if request.method == "POST":
        return json_response(await invitation_admin.create_invitation(services, await read_optional_json(request), actor=actor), 201)
    return json_response(await invitation_admin.list_invitations(services, _query(request)))


@admin_endpoint
async def invitation(request: Request, admin: AdminService, actor: Actor) -> Response:
    services: Services = request.app.state.services
    invitation_id = _path(request, "invitation_id")
    if request.method == "DELETE":
        return json_response(await invitation_admin.revoke_invitation(services, invitation_id, actor=actor))
    return json_response(await invitation_admin.get_invitation(services, invitation_id))


@admin_endpoint
async def roles(request: Request, admin: AdminService, actor: Actor) -> Response:
    return json_response(admin.list_roles())


@admin_endpoint
async def events(request: Request, admin: AdminService, actor: Actor) -> Response:
    return json_response(await admin.list_events(_query(request)))


@admin_endpoint
async def emergency(request: Request, admin: AdminService, actor: Actor) -> Response:
    services: Services = request.app.state.services
    if request.method == "POST":
        return json_response(await operations.set_emergency(services, await read_json(request), actor=actor))
    return json_response(await operations.emergency_status(services))


@admin_endpoint
async def chaos(request: Request, admin: AdminService, actor: Actor) -> Response:
    services: Services = request.app.state.services
    if request.method == "POST":
        return json_response(await operations.start_chaos(services, await read_json(request), actor=actor))
    if request.method == "DELETE":
        return json_response(await operations.stop_chaos(services, _query(request), actor=actor))
    return json_response(await operations.chaos_status(services))


@admin_json
async def openapi(request: Request) -> Response:
    services: Services = request.app.state.services
    return json_response(openapi_document(services.settings.server.issuer), no_store=False, headers={"Cache-Control": "public, max-age=300"})
