"""Refuse requests with too many or too large headers (RFC 6585 §5, 431) before anything reads them."""

from __future__ import annotations

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send


class HeaderLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_headers: int, max_bytes: int) -> None:
        self.app = app
        self.max_headers = max_headers
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope.get("headers", [])
            size = sum(len(name) + len(value) + 4 for name, value in headers)
            if len(headers) > self.max_headers or size > self.max_bytes:
                response = PlainTextResponse("Request header fields too large.", status_code=431)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
