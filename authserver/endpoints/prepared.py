"""Responses served as prepared bytes, straight to ASGI: the discovery documents and the JWKS.

They are what every resource server and client fetches, they change only with the settings or the key
set, and nothing about the request changes them except ``If-None-Match``. So the status line, headers and
body are encoded once (again when the key set changes) and sent as two ASGI messages, without a
Request or Response object. They are still routes in ``routes.py`` and still pass through the edge
middleware (security headers, request id, metrics).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import Message, Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]


def encode_headers(content_type: str | None, headers: dict[str, str], body: bytes | None) -> Headers:
    encoded = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
    if content_type is not None:
        encoded.append((b"content-type", content_type.encode("latin-1")))
    encoded.append((b"content-length", str(len(body or b"")).encode("ascii")))
    return encoded


async def send_prepared(send: Send, status: int, headers: Headers, body: bytes) -> None:
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})


class PreparedDocument:
    """A fixed JSON document (discovery metadata, RFC 8414 / OIDC Discovery)."""

    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        self.body = body
        self._headers = encode_headers("application/json", headers, body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send_prepared(send, 200, list(self._headers), self.body)


class PreparedJwks:
    """The JWKS (RFC 7517) of the key store: 200 with the prepared bytes, or 304 for a matching ETag."""

    def __init__(self, headers_for: Callable[[Scope], tuple[str, bytes, dict[str, str]]]) -> None:
        # headers_for(scope) -> (etag, body, headers): read from the app's key store on each request.
        self._headers_for = headers_for
        self._etag = ""
        self._ok: Headers = []
        self._not_modified: Headers = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        etag, body, headers = self._headers_for(scope)
        if etag != self._etag:  # the key set changed: encode once for the requests that follow
            self._ok = encode_headers("application/jwk-set+json", headers, body)
            self._not_modified = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
            self._etag = etag
        condition = next((value for name, value in scope.get("headers", ()) if name == b"if-none-match"), None)
        if condition is not None and none_match(condition.decode("latin-1"), etag):
            await send_prepared(send, 304, list(self._not_modified), b"")
            return
        await send_prepared(send, 200, list(self._ok), body)


def none_match(header: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: a list of tags or "*", compared weakly (proxies that compress make W/ tags)."""
    if not header:
        return False
    tags = [tag.strip() for tag in header[:2048].split(",")]
    return "*" in tags or etag in (tag.removeprefix("W/") for tag in tags)
