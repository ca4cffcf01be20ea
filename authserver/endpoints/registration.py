"""POST /register: dynamic client registration (RFC 7591 §3) with an initial access token (§3, RFC 6750)."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from authserver.admin.registration import (
    RegistrationError,
    check_initial_access_token,
    register_client,
)
from authserver.admin.validation import AdminError
from authserver.endpoints._guard import client_ip
from authserver.endpoints._http import UNAVAILABLE_ERRORS, json_response
from authserver.endpoints.admin import read_json
from authserver.middleware.body_limit import BodyTooLarge
from authserver.services import Services

log = logging.getLogger("authserver.registration")


async def register(request: Request) -> Response:
    services: Services = request.app.state.services
    if request.method != "POST":
        return json_response({"error": "invalid_request", "error_description": "Use POST."}, 405, {"Allow": "POST"})
    try:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        kind = check_initial_access_token(services, token.strip() if scheme.lower() == "bearer" else None)
        if kind is None:
            await services.events.record("client_registered", "failure", ip=client_ip(request), reason="bad_initial_access_token")
            return json_response(
                {"error": "invalid_token", "error_description": "A valid initial access token is required."}, 401,
                {"WWW-Authenticate": 'Bearer realm="authserver-registration", error="invalid_token"'},
            )
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
