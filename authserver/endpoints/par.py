"""Pushed authorization requests (RFC 9126).

- §2: ``POST /par``, form encoded, with client authentication (the client's registered method, as at
  /token); any other method is 405. The parameters are checked exactly as /authorize checks them
  (``authorize.validate_request``): an error is answered here as JSON (§2.3), never by redirect.
- §2.1: ``request_uri`` must not be pushed; ``request`` (request objects) is not supported.
- §2.2: 201 with ``request_uri`` (``urn:ietf:params:oauth:request_uri:<256 random bits>``) and ``expires_in``
  (``par.request_uri_ttl``, 60 s by default). The parameters wait in the shared cache under the digest of
  the request_uri, so any instance can finish the flow.
- §4: ``/authorize?client_id=…&request_uri=…`` takes them once (``interaction.pushed.take``); the authorization request
  is then exactly what was pushed: other parameters on the URL are ignored.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from authserver.endpoints._guard import authenticated_form, client_ip
from authserver.endpoints._http import json_response, method_not_allowed, oauth_json
from authserver.endpoints.authorize import RedirectError, validate_request
from authserver.errors import InvalidRequest, RequestNotSupported
from authserver.interaction.pushed import push
from authserver.services import Services
from authserver.web.pages import PageError

# Client authentication travels with the pushed request but is not part of it.
CLIENT_AUTH_PARAMS = frozenset({"client_secret", "client_assertion", "client_assertion_type"})


@oauth_json
async def par(request: Request) -> Response:
    if request.method != "POST":
        return method_not_allowed("POST")
    services: Services = request.app.state.services
    # Counted with the client's token requests: a pushed request is the first step of one.
    params, _, client = await authenticated_form(request, services, "token")
    pushed = {name: value for name, value in params.items() if name not in CLIENT_AUTH_PARAMS}
    pushed["client_id"] = client.client_id
    if "request_uri" in pushed:
        raise InvalidRequest("request_uri must not be pushed.")
    if "request" in pushed:
        raise RequestNotSupported("Request objects are not supported.")
    try:
        await validate_request(services, pushed, pushed=True)
    except PageError:
        raise InvalidRequest("Invalid redirect_uri.") from None
    except RedirectError as error:
        raise error.error from None
    request_uri, ttl = await push(services, client.client_id, pushed)
    await services.events.record(
        "par", "pushed", client_id=client.client_id, ip=client_ip(request), user_agent=request.headers.get("user-agent"),
    )
    return json_response({"request_uri": request_uri, "expires_in": ttl}, status_code=201)
