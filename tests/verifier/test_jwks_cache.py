"""The verifier's JWKS cache: honours max-age and ETag, and keeps serving when the server is unreachable."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from authserver.services import Services
from cmipro_verify import InvalidToken, JWKSUnavailable, Verifier
from tests.support.factories import make_client

ISSUER = "http://testserver"
AUDIENCE = "https://api.cmipro.example"


class SwitchableTransport(httpx.AsyncBaseTransport):
    """The app over ASGI, until `down` is set: then every request fails like a dead network."""

    def __init__(self, app: Starlette) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self.down = False
        self.statuses: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        response = await self._inner.handle_async_request(request)
        self.statuses.append(response.status_code)
        return response


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def issue(http: httpx.AsyncClient, services: Services) -> str:
    client = await make_client(services, grant_types=["client_credentials"])
    response = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))
    token: str = response.json()["access_token"]
    return token


@pytest.fixture
def transport(app: Starlette) -> SwitchableTransport:
    return SwitchableTransport(app)


def make_verifier(transport: SwitchableTransport, clock: Clock) -> Verifier:
    # The key set alone: these tests count JWKS requests (the revocation feed's own are in test_revocation_feed.py).
    return Verifier(
        issuer=ISSUER, audience=AUDIENCE, jwks_url=f"{ISSUER}/jwks", clock=clock,
        async_http_client=httpx.AsyncClient(transport=transport), revocation_check=False,
    )


async def test_jwks_is_cached_for_max_age_then_revalidated_with_etag(
    http: httpx.AsyncClient, services: Services, transport: SwitchableTransport
) -> None:
    token = await issue(http, services)
    clock = Clock(services.clock.now().timestamp())
    verifier = make_verifier(transport, clock)
    max_age = services.settings.tokens.jwks_max_age
    await verifier.verify_async(token)
    clock.now += max_age - 1
    await verifier.verify_async(token)
    assert transport.statuses == [200]
    clock.now += 1
    await verifier.verify_async(token)
    assert transport.statuses == [200, 304]  # conditional request: the set did not change
    await verifier.verify_async(token)
    assert transport.statuses == [200, 304]


async def test_cached_keys_keep_verifying_while_the_server_is_unreachable(
    http: httpx.AsyncClient, services: Services, transport: SwitchableTransport
) -> None:
    token = await issue(http, services)
    clock = Clock(services.clock.now().timestamp())
    verifier = make_verifier(transport, clock)
    await verifier.verify_async(token)
    transport.down = True
    clock.now += services.settings.tokens.jwks_max_age + 10  # stale, and the refetch fails
    assert (await verifier.verify_async(token)).subject
    assert verifier.jwks.fetches == 2
    # Failed fetches are retried after a pause, not on every request.
    await verifier.verify_async(token)
    assert verifier.jwks.fetches == 2
    transport.down = False
    clock.now += verifier.jwks.retry_after_error
    await verifier.verify_async(token)
    assert verifier.jwks.fetches == 3 and transport.statuses[-1] in (200, 304)


async def test_no_key_set_ever_fetched_is_unavailable_not_invalid(
    http: httpx.AsyncClient, services: Services, transport: SwitchableTransport
) -> None:
    token = await issue(http, services)
    transport.down = True
    verifier = make_verifier(transport, Clock(services.clock.now().timestamp()))
    with pytest.raises(JWKSUnavailable) as raised:
        await verifier.verify_async(token)
    assert raised.value.status == 503
    assert not isinstance(raised.value, InvalidToken)


def test_sync_verifier_with_an_unreachable_server_is_unavailable() -> None:
    verifier = Verifier(issuer=ISSUER, audience=AUDIENCE, jwks_url="http://127.0.0.1:9/jwks", timeout=0.5)
    token = "eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImsifQ.e30.sig"
    with pytest.raises(JWKSUnavailable):
        verifier.verify(token)
    verifier.close()
