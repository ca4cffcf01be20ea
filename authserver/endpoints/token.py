"""Token endpoint (RFC 6749 §3.2, §5): authenticate the client, run its grant, answer JSON with no-store."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from authserver.endpoints._http import json_response, method_not_allowed, oauth_json, read_form
from authserver.errors import InvalidRequest, UnsupportedGrantType
from authserver.grants.base import TokenGrant, authenticate_client
from authserver.protocol import client_auth


@oauth_json
async def token(request: Request) -> Response:
    if request.method != "POST":
        return method_not_allowed("POST")
    services = request.app.state.services
    grants: dict[str, TokenGrant] = request.app.state.grants
    params = await read_form(request, max_bytes=services.settings.server.max_body_bytes)
    presented = client_auth.extract(request.headers.get("authorization"), params)
    grant_type = params.get("grant_type")
    if grant_type is None:
        raise InvalidRequest("Missing grant_type.")
    client = await authenticate_client(services, presented)
    grant = grants.get(grant_type)
    if grant is None:
        raise UnsupportedGrantType(f"Supported grant types: {', '.join(sorted(grants))}.")
    relevant = {name: value for name, value in params.items() if name in grant.PARAMETERS}
    body = await grant.create_token_response(client, relevant)
    services.metrics.token_issued(grant_type, client.client_id)
    return json_response(body)
