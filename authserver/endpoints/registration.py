"""POST /register: dynamic client registration (RFC 7591 §3) with an initial access token (§3, RFC 6750)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from authserver.admin.registration import (
    REGISTRATION_CLIENT,
    REGISTRATION_SCOPE,
    RegistrationError,
    is_configured_token,
    register_client,
)
from authserver.admin.validation import AdminError
from authserver.endpoints._guard import client_ip
from authserver.endpoints._http import json_response, method_not_allowed, oauth_json
from authserver.endpoints.admin import read_json
from authserver.endpoints.bearer import Protection, gate, presented_token, protected
from authserver.errors import OAuthError
from authserver.services import Services

# Signed initial access tokens: the CLI's, for the registration endpoint's own audience.
PROTECTION = Protection(
    scope=REGISTRATION_SCOPE, audiences=("/register",), person=False, client=True,
    pseudo_clients=frozenset({REGISTRATION_CLIENT}), realm="authserver-registration",
)


async def initial_access_token(request: Request, services: Services) -> str:
    """Which kind of initial access token the request carries ("configured" or "signed"), or the gate's error."""
    token = await presented_token(request, PROTECTION)
    if is_configured_token(services, token):
        return "configured"
    await gate(request, services, PROTECTION)
    return "signed"


@protected(PROTECTION)
@oauth_json
async def register(request: Request) -> Response:
    """RFC 7591 §3: errors are OAuth-style JSON (§3.2.2) through the OAuth channel's boundary."""
    services: Services = request.app.state.services
    if request.method != "POST":
        return method_not_allowed("POST")
    try:
        kind = await initial_access_token(request, services)
    except OAuthError as error:
        if error.status_code == 401:
            await services.events.record("client_registered", "failure", ip=client_ip(request), reason="bad_initial_access_token")
        raise
    try:
        data = await read_json(request)
    except AdminError as error:
        raise RegistrationError("invalid_client_metadata", error.message, 400) from None
    return json_response(await register_client(services, data, token_kind=kind, ip=client_ip(request)), 201)
