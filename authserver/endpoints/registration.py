"""POST /register: dynamic client registration (RFC 7591 §3) with an initial access token (§3, RFC 6750)."""

from __future__ import annotations

import logging

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
from authserver.endpoints._http import UNAVAILABLE_ERRORS, json_response
from authserver.endpoints.admin import read_json
from authserver.endpoints.bearer import Protection, gate, presented_token, protected
from authserver.errors import OAuthError
from authserver.middleware.body_limit import BodyTooLarge
from authserver.services import Services

log = logging.getLogger("authserver.registration")

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
async def register(request: Request) -> Response:
    services: Services = request.app.state.services
    if request.method != "POST":
        return json_response({"error": "invalid_request", "error_description": "Use POST."}, 405, {"Allow": "POST"})
    try:
        try:
            kind = await initial_access_token(request, services)
        except OAuthError as error:
            if error.status_code == 401:
                await services.events.record("client_registered", "failure", ip=client_ip(request), reason="bad_initial_access_token")
            return json_response(error.body(), error.status_code, error.headers)
        try:
            data = await read_json(request)
        except AdminError as error:
            raise RegistrationError("invalid_client_metadata", error.message, 400) from None
        return json_response(await register_client(services, data, token_kind=kind, ip=client_ip(request)), 201)
    except RegistrationError as error:
        return json_response(error.body(), error.status)
    except BodyTooLarge:
        raise
    except UNAVAILABLE_ERRORS:
        log.exception("dependency unavailable on /register")
        return json_response({"error": "temporarily_unavailable"}, 503, {"Retry-After": "5"})
