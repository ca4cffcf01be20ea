"""Request-side abuse guards shared by endpoints and pages: client IP, rate limits, guarded client auth.

    ip = client_ip(request)
    await services.limiter.check("introspection", client.client_id, limit=client.rate_limit_per_minute, ip=ip)
    client = await authenticate_client_guarded(request, services, presented)   # RFC 6749 §2.3 + locks

A JSON endpoint wrapped in ``oauth_json`` turns the TooManyRequests raised here into a 429 JSON error
with ``Retry-After`` and ``RateLimit-*`` headers; a page catches it and calls :func:`too_many_page`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from authserver.abuse import retry_error
from authserver.accounts.lockout import client_ip_key, client_key
from authserver.endpoints._http import read_form
from authserver.endpoints._mtls import client_certificate
from authserver.errors import InvalidClient, TooManyRequests
from authserver.grants.base import authenticate_client
from authserver.protocol import client_auth
from authserver.protocol import client_ip as client_ip_rules
from authserver.protocol.client_auth import PresentedCredentials
from authserver.services import Services
from authserver.storage.sql.clients import ClientInfo


def client_ip(request: Request) -> str:
    """The client's address: X-Forwarded-For only through configured trusted proxies (security.trusted_proxies)."""
    cached = request.scope.get("authserver.client_ip")
    if cached is not None:
        return str(cached)
    services: Services = request.app.state.services
    networks = getattr(request.app.state, "trusted_proxy_networks", None)
    if networks is None:
        networks = client_ip_rules.parse_networks(services.settings.security.trusted_proxies)
        request.app.state.trusted_proxy_networks = networks
    peer = request.client.host if request.client else None
    forwarded = [v.decode("latin-1") for k, v in request.scope.get("headers", []) if k == b"x-forwarded-for"]
    ip = client_ip_rules.resolve(peer, forwarded, networks)
    request.scope["authserver.client_ip"] = ip
    return ip


def user_agent(request: Request) -> str | None:
    return request.headers.get("user-agent")


def too_many_page(request: Request, error: TooManyRequests, *, locale: str | None = None) -> Response:
    """The 429 page for people: same headers as the JSON answer."""
    from authserver.web.pages import error_page

    response = error_page(request, "error.too_many_requests", status_code=429, locale=locale)
    response.headers.update(error.headers)
    response.headers.setdefault("Retry-After", "60")
    return response


async def authenticate_client_guarded(request: Request, services: Services, presented: PresentedCredentials) -> ClientInfo:
    """Client authentication with brute-force locks per (client id, IP) and per IP, and events.

    While locked, the credentials are not checked at all (429), so the lock tells nothing about them.
    """
    ip = client_ip(request)
    keys = [client_key(presented.client_id, ip), client_ip_key(ip)]
    locked = await services.lockout.client_locked_for(keys)
    if locked:
        await services.events.record(
            "client_auth", "locked", client_id=presented.client_id[:64], ip=ip, user_agent=user_agent(request),
            method=presented.method,
        )
        raise retry_error(locked)
    certificate = client_certificate(request)  # a malformed one is a 400 before anything is counted
    try:
        return await authenticate_client(services, presented, certificate=certificate)
    except InvalidClient:
        limits = services.limiter
        by_client = await services.lockout.failure(keys[0], limits.client_policy())
        by_ip = await services.lockout.failure(keys[1], limits.client_ip_policy())
        await services.events.record(
            "client_auth", "failure", client_id=presented.client_id[:64], ip=ip, user_agent=user_agent(request),
            method=presented.method,
        )
        for failure, scope in ((by_client, "client"), (by_ip, "client_ip")):
            if failure.locked_for:
                await services.events.record(
                    "lockout", "locked", client_id=presented.client_id[:64], ip=ip, scope=scope, seconds=failure.locked_for,
                )
        raise


async def authenticated_form(
    request: Request, services: Services, limit_scope: str
) -> tuple[dict[str, str], PresentedCredentials, ClientInfo]:
    """A client-authenticated form POST (/introspect, /revoke, /par): its parameters, the credentials as
    presented and the client they prove (RFC 6749 §2.3), counted against the client's ``limit_scope`` budget."""
    params = await read_form(request, max_bytes=services.settings.server.max_body_bytes)
    presented = client_auth.extract(request.headers.get("authorization"), params)
    client = await authenticate_client_guarded(request, services, presented)
    await services.limiter.check(
        limit_scope, client.client_id, limit=client.rate_limit_per_minute, ip=client_ip(request), client_id=client.client_id
    )
    return params, presented, client
