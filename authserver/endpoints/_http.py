"""HTTP helpers shared by the JSON endpoints: form reading, responses, and the error boundaries.

Two JSON channels, one renderer (``error_response``: RFC 6749 §5.2 JSON with ``no-store``) and one
boundary each: ``oauth_json`` (the OAuth/OIDC endpoints, the MFA API, RFC 7591 registration) and
``admin_json`` (the admin API, whose refusals add per-field ``errors``). The HTML channel's boundary is
``web.pages.html_page``. ``channel_of`` tells which one an endpoint uses (the route-table test reads it).
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from authserver.errors import InvalidRequest, OAuthError, ServerError, TemporarilyUnavailable
from authserver.middleware.body_limit import BodyTooLarge
from authserver.middleware.request_id import request_id_var
from authserver.protocol.params import parse_query, parse_urlencoded
from authserver.storage.errors import DATABASE_ERRORS, is_bad_input

log = logging.getLogger("authserver.http")

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 64 * 1024

# Failures of a dependency, not of the request: answered 503 + Retry-After, never a token.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = DATABASE_ERRORS
try:  # redis is a hard dependency, but keep the tuple readable
    from redis.exceptions import RedisError

    UNAVAILABLE_ERRORS += (RedisError,)
except ImportError:  # pragma: no cover
    pass


class _NoStoreJSON(Response):
    """A JSON response with ``no-store`` whose headers are encoded once for all (token, introspection)."""

    media_type = "application/json"
    _fixed = [(b"content-type", b"application/json"), *((k.lower().encode(), v.encode()) for k, v in NO_STORE.items())]

    def __init__(self, content: bytes, status_code: int) -> None:
        self.status_code = status_code
        self.background = None
        self.body = content
        self.raw_headers = [(b"content-length", str(len(content)).encode()), *self._fixed]


def json_response(body: Any, status_code: int = 200, headers: dict[str, str] | None = None, *, no_store: bool = True) -> Response:
    content = json.dumps(body, separators=(",", ":")).encode()
    if no_store and not headers:
        return _NoStoreJSON(content, status_code)
    all_headers = dict(NO_STORE) if no_store else {}
    if headers:
        all_headers.update(headers)
    return Response(content, status_code=status_code, headers=all_headers, media_type="application/json")


def error_response(error: OAuthError) -> Response:
    headers = dict(error.headers)
    if error.status_code == 503:
        headers.setdefault("Retry-After", "5")
    return json_response(error.body(), error.status_code, headers)


async def read_form(request: Request, *, max_bytes: int = MAX_FORM_BYTES) -> dict[str, str]:
    """The POST body as parameters; only application/x-www-form-urlencoded is accepted."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise InvalidRequest("The request body must be application/x-www-form-urlencoded.")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_bytes:
                raise InvalidRequest("The request body is too large.")
    except ClientDisconnect:
        raise InvalidRequest("The request body was not received.") from None
    return parse_urlencoded(bytes(body))


def query(request: Request) -> dict[str, str]:
    return parse_query(request.scope.get("query_string", b""))


Endpoint = Callable[[Request], Awaitable[Response]]

E = TypeVar("E")

# The error channels: which renderer answers an endpoint's errors.
OAUTH_JSON = "oauth_json"
ADMIN_JSON = "admin_json"
HTML = "html"


def mark_channel(endpoint: E, channel: str) -> E:
    """Record an endpoint's error channel (kept through ``functools.wraps``)."""
    setattr(endpoint, "error_channel", channel)  # noqa: B010 - any callable
    return endpoint


def channel_of(endpoint: Any) -> str | None:
    return getattr(endpoint, "error_channel", None)


def unexpected(request: Request, error: BaseException) -> OAuthError:
    """What a boundary answers for an exception outside the error family: bad input that reached the
    database is a 400, a dependency that did not answer a 503, anything else a generic 500; all logged
    with the request id, none with a traceback to the client."""
    where, request_id = request.url.path, request_id_var.get() or "-"
    if is_bad_input(error):
        log.warning("input refused by the database on %s (request %s): %s", where, request_id, type(error).__name__)
        return InvalidRequest("The request has a value the server cannot store.")
    if isinstance(error, UNAVAILABLE_ERRORS):
        log.exception("dependency unavailable on %s (request %s)", where, request_id)
        return TemporarilyUnavailable()
    log.exception("unhandled error on %s (request %s)", where, request_id)
    return ServerError()


def json_boundary(endpoint: Endpoint, channel: str) -> Endpoint:
    """Error boundary of a JSON channel: the error family as RFC 6749 §5.2 JSON, the rest via ``unexpected``."""

    @functools.wraps(endpoint)
    async def wrapper(request: Request) -> Response:
        try:
            return await endpoint(request)
        except OAuthError as error:
            if error.debug:
                log.info("%s: %s (%s)", request.url.path, error.error, error.debug)
            return error_response(error)
        except BodyTooLarge:
            raise
        except Exception as error:  # noqa: BLE001 - the channel's catch-all
            return error_response(unexpected(request, error))

    return mark_channel(wrapper, channel)


def oauth_json(endpoint: Endpoint) -> Endpoint:
    """Error boundary for OAuth JSON endpoints: OAuth errors as RFC 6749 §5.2 JSON, outages as 503, the rest as 500."""
    return json_boundary(endpoint, OAUTH_JSON)


def admin_json(endpoint: Endpoint) -> Endpoint:
    """Error boundary for the admin API: ``AdminError`` with its per-field ``errors``, the gate's refusals,
    outages as 503, the rest as a logged 500; the same JSON shape and ``no-store``."""
    return json_boundary(endpoint, ADMIN_JSON)


def method_not_allowed(allowed: str) -> Response:
    error = InvalidRequest(f"Use {allowed}.")
    response = error_response(error)
    response.status_code = 405
    response.headers["Allow"] = allowed
    return response
