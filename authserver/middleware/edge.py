"""The edge of every HTTP request, as one pure ASGI middleware.

In order, for each request:

1. metrics: in-flight gauge, then route template, method, status and latency when it ends
   (``authserver.metrics``; the route label is Starlette's matched template, ``unmatched`` otherwise);
2. request id and W3C trace context in contextvars for every log line (``middleware/request_id.py``),
   the id echoed as ``X-Request-ID``;
3. security headers on every response, refusals included (RFC 9700 §4.16, ASVS 5 §3.4);
4. too many or too large request headers: 431 (RFC 6585 §5) before anything reads them;
5. a ``Content-Length`` over ``max_body_bytes``: 413 before anything parses the body; a body that
   turns out larger while it streams: 413 if no response has started yet; in staging, an ``edge_5xx``
   chaos experiment answers its share of requests 503 here (``authserver/chaos.py``);
6. CORS at the paths a browser app calls (``/token``, ``/revoke``, ``/userinfo``; ``authserver/cors.py``):
   preflights answered here, ``Access-Control-Allow-Origin`` for allowed origins, ``Vary: Origin``;
7. the machine endpoints (``direct``: exact paths such as ``/token`` and ``/jwks``) are called straight
   from here, without walking the route table; every other path goes on to the router.

These were five middlewares. As one they read the request headers once and wrap ``send`` and ``receive``
once, and every await on a database or Redis resumes five frames fewer: about 10 % of the CPU of a token
or introspection request (docs/performance.md).
"""

from __future__ import annotations

import inspect
import secrets
import time
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authserver.chaos import Chaos
from authserver.cors import CorsPolicy
from authserver.metrics import Metrics
from authserver.middleware.body_limit import BodyTooLarge
from authserver.middleware.request_id import (
    SANE_REQUEST_ID,
    parse_traceparent,
    request_id_var,
    traceparent_var,
)

CSP = "default-src 'none'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
# The switch of the experiments themselves is never answered by an injected 5xx (they can always be stopped).
CHAOS_EXEMPT = "/admin/api/chaos"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path or "/"
    return "unmatched"


def security_headers(*, hsts: bool) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CSP,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if hsts:
        headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    return headers


class EdgeMiddleware:
    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, hsts: bool, max_headers: int, max_header_bytes: int, max_body_bytes: int,
        direct: Mapping[str, Route] | None = None, cors: CorsPolicy | None = None, chaos: Chaos | None = None,
    ) -> None:
        self.app = app
        self.cors = cors
        self.chaos = chaos
        # path -> (route, the endpoint function to call with a Request, or None for an ASGI endpoint)
        self.direct = {
            path: (route, route.endpoint if inspect.isfunction(route.endpoint) else None)
            for path, route in (direct or {}).items()
        }
        self.metrics = metrics
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        # Encoded once: this runs on every response.
        self._security = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in security_headers(hsts=hsts).items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        self.metrics.in_flight.inc()
        headers = scope.get("headers", [])
        size = 0
        incoming_id = incoming_trace = length = origin = None
        for name, value in headers:
            size += len(name) + len(value) + 4
            if name == b"x-request-id":
                incoming_id = incoming_id or value.decode("latin-1")
            elif name == b"traceparent":
                incoming_trace = incoming_trace or value.decode("latin-1")
            elif name == b"content-length":
                length = value
            elif name == b"origin":
                origin = value if origin is None else b"duplicated"  # two Origin headers: no origin is allowed
        random = secrets.token_hex(32)  # one read of the system's randomness for all three ids
        request_id = incoming_id if incoming_id and SANE_REQUEST_ID.fullmatch(incoming_id) else random[:16]
        id_token = request_id_var.set(request_id)
        trace_token = traceparent_var.set(parse_traceparent(incoming_trace) or f"00-{random[16:48]}-{random[48:]}-00")
        raw_id = request_id.encode("latin-1")
        status = 500
        started = False
        cors = self.cors if self.cors is not None and scope["path"] in self.cors.paths else None
        cors_headers = cors.response_headers(origin) if cors is not None else []

        async def edge_send(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
                out = [pair for pair in message.get("headers", ()) if pair[0].lower() != b"x-request-id"]
                present = {name.lower() for name, _ in out}
                out.extend(pair for pair in self._security if pair[0] not in present)
                out.extend(cors_headers)
                out.append((b"x-request-id", raw_id))
                message["headers"] = out
            await send(message)

        try:
            if len(headers) > self.max_headers or size > self.max_header_bytes:
                await PlainTextResponse("Request header fields too large.", status_code=431)(scope, receive, edge_send)
            elif length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
                await PlainTextResponse("Request body too large.", status_code=413)(scope, receive, edge_send)
            elif cors is not None and origin is not None and scope["method"] == "OPTIONS" and any(
                name == b"access-control-request-method" for name, _ in headers
            ):
                code, preflight_headers = cors.preflight(scope["path"], origin, headers)
                cors_headers = []
                answer = Response(status_code=code, headers={n.decode(): v.decode("latin-1") for n, v in preflight_headers})
                await answer(scope, receive, edge_send)
            elif (
                self.chaos is not None and self.chaos.experiments and not scope["path"].startswith(CHAOS_EXEMPT)
                and (injected := self.chaos.edge_status())
            ):
                await PlainTextResponse("Service unavailable (injected fault).", status_code=injected)(scope, receive, edge_send)
            else:
                try:
                    found = self.direct.get(scope["path"]) if not scope.get("root_path") else None
                    if found is not None and (found[0].methods is None or scope["method"] in found[0].methods):
                        await self._call_direct(scope, self._limited(receive), edge_send, *found)
                    else:
                        await self.app(scope, self._limited(receive), edge_send)
                except BodyTooLarge:
                    if not started:
                        await PlainTextResponse("Request body too large.", status_code=413)(scope, receive, edge_send)
        finally:
            traceparent_var.reset(trace_token)
            request_id_var.reset(id_token)
            self.metrics.in_flight.dec()
            method = scope.get("method", "GET")
            self.metrics.observe_request(
                route_template(scope), method if method in KNOWN_METHODS else "OTHER", status, time.perf_counter() - began
            )

    @staticmethod
    async def _call_direct(scope: Scope, receive: Receive, send: Send, route: Route, endpoint: Any) -> None:
        """What the router and ``request_response`` do for this exact path, without trying the routes before
        it. These endpoints answer every error themselves (``oauth_json``), so no exception handler applies."""
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        if endpoint is None:
            await route.app(scope, receive, send)
            return
        response = await endpoint(Request(scope, receive, send))
        await response(scope, receive, send)

    def _limited(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge
            return message

        return limited_receive
