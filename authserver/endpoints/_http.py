"""HTTP helpers shared by the JSON endpoints: form reading, responses, and the error boundary."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from authserver.errors import InvalidRequest, OAuthError, ServerError, TemporarilyUnavailable
from authserver.middleware.body_limit import BodyTooLarge
from authserver.protocol.params import parse_query, parse_urlencoded
from authserver.storage.errors import DATABASE_ERRORS

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


def oauth_json(endpoint: Endpoint) -> Endpoint:
    """Error boundary for JSON endpoints: OAuth errors as RFC 6749 §5.2 JSON, outages as 503, the rest as 500."""

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
        except UNAVAILABLE_ERRORS:
            log.exception("dependency unavailable on %s", request.url.path)
            return error_response(TemporarilyUnavailable())
        except Exception:
            log.exception("unhandled error on %s", request.url.path)
            return error_response(ServerError())

    return wrapper


def method_not_allowed(allowed: str) -> Response:
    error = InvalidRequest(f"Use {allowed}.")
    response = error_response(error)
    response.status_code = 405
    response.headers["Allow"] = allowed
    return response
