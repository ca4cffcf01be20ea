"""Request ids and W3C trace context, kept in contextvars for every log line of the request.

- ``X-Request-ID``: accepted from the caller if sane, else generated; echoed in the response.
- ``traceparent`` (W3C Trace Context §3.2): accepted if well formed, else a new one is started (version 00,
  random trace id and parent id, not sampled); kept for log lines and for any call this request makes.
"""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
traceparent_var: ContextVar[str | None] = ContextVar("traceparent", default=None)
_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def parse_traceparent(value: str | None) -> str | None:
    """The header if valid (§3.2.2: not version ff, trace id and parent id not all zeros), else None."""
    if not value:
        return None
    match = _TRACEPARENT.match(value.strip())
    if not match:
        return None
    version, trace_id, parent_id, _ = match.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return value.strip()


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"


def trace_id(traceparent: str | None) -> str | None:
    return traceparent.split("-")[1] if traceparent else None


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        incoming_trace = None
        for name, value in scope.get("headers", []):
            if name == b"x-request-id" and incoming is None:
                incoming = value.decode("latin-1")
            elif name == b"traceparent" and incoming_trace is None:
                incoming_trace = value.decode("latin-1")
        request_id = incoming if incoming and _SANE.match(incoming) else secrets.token_hex(8)
        token = request_id_var.set(request_id)
        trace_token = traceparent_var.set(parse_traceparent(incoming_trace) or new_traceparent())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message["headers"] = [h for h in message.get("headers", ()) if h[0].lower() != b"x-request-id"]
                headers.append((b"x-request-id", request_id.encode("latin-1")))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            traceparent_var.reset(trace_token)
            request_id_var.reset(token)
