"""Starlette / ASGI integration: a pure ASGI middleware that verifies the bearer token, and helpers.

    from cmipro_verify import Verifier
    from cmipro_verify.starlette import BearerAuthMiddleware, claims_of, requires

    verifier = Verifier(issuer="https://auth.cmipro.example", audience="https://api.cmipro.example")

    @requires("read:levels")
    async def levels(request):
        return JSONResponse({"for": claims_of(request).subject})

    app = Starlette(routes=[Route("/levels", levels)],
                    middleware=[Middleware(BearerAuthMiddleware, verifier=verifier, exempt_paths={"/health"})])

DPoP-bound tokens (RFC 9449) come as ``Authorization: DPoP <token>`` with a ``DPoP`` proof; the middleware
checks the proof against the URL the client called: give ``base_url`` (this API's public scheme://host[:port],
e.g. ``"https://api.cmipro.example"``) when it runs behind a proxy; without it the URL is built from the
ASGI server's own scheme and address, never from the Host header. A bound token sent as ``Bearer`` is
refused.

Certificate-bound tokens (RFC 8705, ``cnf.x5t#S256``) need the request's TLS client certificate. By default
it is read from the ASGI TLS extension (``scope["extensions"]["tls"]``, for a server that terminates mutual
TLS itself and fills it); behind a TLS-terminating proxy pass
``client_certificate=certificate_from_header("X-SSL-Client-Cert")``, and only if the proxy sets (overwrites)
that header on every request. A token without ``cnf`` is not affected.

Errors are answered as RFC 6750 §3 says: 401 ``invalid_token`` / 403 ``insufficient_scope`` with a
``WWW-Authenticate: Bearer …`` header (a revoked token is a 401 too), 503 when the key set could never be
fetched or no recent enough revocation feed is available (``on_revocation_unavailable="closed"``).
Importing this module needs Starlette; the rest of the library does not.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Collection

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cmipro_verify._claims import Claims
from cmipro_verify._errors import InvalidToken, TokenError
from cmipro_verify._mtls import Certificate
from cmipro_verify._verifier import Verifier

STATE_KEY = "token_claims"
CertificateSource = Callable[[Scope], Certificate | None]


def tls_extension_certificate(scope: Scope) -> Certificate | None:
    """The client certificate (PEM) of the ASGI TLS extension, if the server filled it."""
    tls = (scope.get("extensions") or {}).get("tls")
    chain = tls.get("client_cert_chain") if isinstance(tls, dict) else None
    return chain[0] if chain and isinstance(chain[0], str) else None


def certificate_from_header(name: str) -> CertificateSource:
    """The client certificate a TLS-terminating proxy forwards in header ``name`` (URL-encoded PEM, e.g.
    nginx ``$ssl_client_escaped_cert``). Use only behind a proxy that overwrites the header on every request."""

    def source(scope: Scope) -> Certificate | None:
        return Headers(scope=scope).get(name) or None

    return source


def error_response(error: TokenError, *, realm: str | None = None) -> Response:
    headers = {"WWW-Authenticate": error.www_authenticate(realm), "Cache-Control": "no-store"}
    if error.status == 503:
        headers["Retry-After"] = "5"
    return JSONResponse(
        {"error": error.error, "error_description": error.description}, status_code=error.status, headers=headers
    )


class BearerAuthMiddleware:
    """Verifies ``Authorization: Bearer`` on every HTTP request except ``exempt_paths``.

    With ``required=False`` a request without an Authorization header passes with no claims (endpoints
    decide with :func:`requires`); a header that is present but invalid is always refused.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        verifier: Verifier,
        exempt_paths: Collection[str] = (),
        required: bool = True,
        realm: str | None = None,
        base_url: str | None = None,
        client_certificate: CertificateSource = tls_extension_certificate,
    ) -> None:
        self.app = app
        self.client_certificate = client_certificate
        self.verifier = verifier
        self.exempt_paths = frozenset(exempt_paths)
        self.required = required
        self.realm = realm
        self.base_url = base_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        authorization = headers.get("authorization")
        if authorization is None and not self.required:
            await self.app(scope, receive, send)
            return
        try:
            claims = await self.verifier.verify_request_async(
                authorization, dpop=headers.getlist("dpop"), method=scope["method"], url=request_url(scope, self.base_url),
                client_certificate=self.client_certificate(scope),
            )
        except TokenError as error:
            await error_response(error, realm=self.realm)(scope, receive, send)
            return
        scope.setdefault("state", {})[STATE_KEY] = claims
        await self.app(scope, receive, send)


def request_url(scope: Scope, base_url: str | None = None) -> str:
    """The URL a DPoP proof's ``htu`` must name: ``base_url`` (or the server's own scheme and address,
    never the Host header) plus the path."""
    path = str(scope.get("root_path", "")) + str(scope["path"])
    if base_url is not None:
        return base_url.rstrip("/") + path
    host, port = scope.get("server") or ("localhost", None)
    scheme = str(scope.get("scheme", "http"))
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port in (None, default) else f"{host}:{port}"
    return f"{scheme}://{netloc}{path}"


def claims_of(request: Request) -> Claims:
    """The verified claims the middleware stored, or :class:`InvalidToken` if the request had none."""
    claims = request.scope.get("state", {}).get(STATE_KEY)
    if not isinstance(claims, Claims):
        raise InvalidToken("missing bearer token")
    return claims


Endpoint = Callable[[Request], Awaitable[Response]]


def requires(*scopes: str, any_role: Collection[str] = ()) -> Callable[[Endpoint], Endpoint]:
    """Decorate an endpoint: every scope in ``scopes`` and one of ``any_role`` (if given) are required."""

    def decorate(endpoint: Endpoint) -> Endpoint:
        @functools.wraps(endpoint)
        async def wrapper(request: Request) -> Response:
            try:
                claims_of(request).require_scopes(*scopes).require_any_role(*any_role)
            except TokenError as error:
                return error_response(error)
            return await endpoint(request)

        return wrapper

    return decorate


async def authenticate(
    request: Request,
    verifier: Verifier,
    *scopes: str,
    base_url: str | None = None,
    client_certificate: CertificateSource = tls_extension_certificate,
) -> Claims:
    """Without the middleware (e.g. a FastAPI dependency): verify the request's token (Bearer or DPoP, and
    its certificate binding) and scopes.

    Raises :class:`TokenError`; answer it with :func:`error_response`.
    """
    claims = await verifier.verify_request_async(
        request.headers.get("authorization"), dpop=request.headers.getlist("dpop"), method=request.method,
        url=request_url(request.scope, base_url), client_certificate=client_certificate(request.scope),
    )
    return claims.require_scopes(*scopes)


__all__ = [
    "BearerAuthMiddleware",
    "authenticate",
    "certificate_from_header",
    "claims_of",
    "error_response",
    "request_url",
    "requires",
    "tls_extension_certificate",
]
