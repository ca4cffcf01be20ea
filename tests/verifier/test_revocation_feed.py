"""The verifier's revocation feed: revoked tokens refused once the cached feed is older than the freshness,
valid tokens never refused, the last good feed served while the server is unreachable (then closed or
open), and forged or substituted feeds never trusted.

The server and the verifier share one FrozenClock, so "30 seconds later" is a clock move, not a sleep. The
server runs in process (ASGI transport); the sync path runs against the live uvicorn server instead.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from joserfc import jws
from joserfc.jwk import ECKey

from authserver.accounts.lifecycle import disable_account, enable_account
from authserver.admin.service import Actor, AdminService
from authserver.app import create_app
from authserver.clock import FrozenClock
from authserver.services import Services
from authserver.settings import load_settings
from cmipro_verify import InvalidToken, RevocationUnavailable, Unavailable, Verifier
from tests.conftest import ISSUER, environ_for, fast_passwords
from tests.support.factories import make_client
from tests.support.lifecycle import Issued, issue, revoke
from tests.verifier.conftest import AUDIENCE, LiveServer

FRESHNESS = 30.0
MAX_STALE = 300.0


class FeedTransport(httpx.AsyncBaseTransport):
    """The app over ASGI; ``down`` fails every request like a dead network; ``feed`` replaces /revocations."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self.down = False
        self.feed: bytes | None = None
        self.feed_statuses: list[int] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.url.path == "/revocations" and self.feed is not None:
            self.feed_statuses.append(200)
            return httpx.Response(200, content=self.feed, headers={"Content-Type": "application/revocation-list+jwt"})
        response = await self._inner.handle_async_request(request)
        if request.url.path == "/revocations":
            self.feed_statuses.append(response.status_code)
        return response


@dataclass
class World:
    http: httpx.AsyncClient
    services: Services
    clock: FrozenClock
    transport: FeedTransport

    def now(self) -> float:
        return self.clock.now().timestamp()

    def verifier(self, **options: object) -> Verifier:
        values: dict[str, object] = {
            "issuer": ISSUER, "audience": AUDIENCE, "clock": self.now,
            "async_http_client": httpx.AsyncClient(transport=self.transport),
            "revocation_freshness": FRESHNESS, "revocation_max_stale": MAX_STALE,
        }
        values.update(options)
        return Verifier(**values)  # type: ignore[arg-type]

    async def cc_token(self, client_id: str, secret: str | None) -> str:
        assert secret is not None
        response = await self.http.post("/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])


@pytest.fixture
async def world(backend: str, database_url: str, tmp_root: Path) -> AsyncIterator[World]:
    clock = FrozenClock()
    application = create_app(load_settings(environ_for(backend, database_url, tmp_root)), clock=clock, passwords=fast_passwords())
    transport = FeedTransport(httpx.ASGITransport(app=application))
    async with LifespanManager(application), httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        yield World(http, application.state.services, clock, transport)


async def person(world: World) -> Issued:
    world.http.cookies.clear()
    return await issue(world.http, world.services, scope="openid read:levels")


async def test_a_revoked_token_is_refused_once_the_feed_is_older_than_the_freshness(world: World) -> None:
    verifier = world.verifier()
    revoked, kept = await person(world), await person(world)
    assert (await verifier.verify_async(revoked.access)).subject == revoked.user.account_id
    assert (await revoke(world.http, revoked.client, revoked.access)).status_code == 200

    # Within the freshness the cached feed answers (this is the bound documented in verifying-tokens.md).
    world.clock.advance(FRESHNESS - 1)
    assert await verifier.verify_async(revoked.access)
    assert verifier.revocations is not None and verifier.revocations.fetches == 1
    world.clock.advance(1)
    with pytest.raises(InvalidToken, match="revoked"):
        await verifier.verify_async(revoked.access)
    assert verifier.revocations.fetches == 2
    # Revoking one access token leaves its family and every other token valid.
    assert await verifier.verify_async(kept.access)
    world.clock.advance(FRESHNESS)
    assert await verifier.verify_async(kept.access)
    assert world.transport.feed_statuses == [200, 200, 304]  # polling revalidates with the ETag


async def test_families_persons_and_clients_are_refused_and_valid_tokens_never_are(world: World) -> None:
    verifier = world.verifier()
    family, disabled, bystander = await person(world), await person(world), await person(world)
    client = await make_client(world.services, grant_types=["client_credentials"], redirect_uris=[])
    machine = await world.cc_token(client.client_id, client.secret)
    other = await make_client(world.services, grant_types=["client_credentials"], redirect_uris=[])
    other_machine = await world.cc_token(other.client_id, other.secret)
    everyone = [family.access, disabled.access, bystander.access, machine, other_machine]
    for token in everyone:
        assert await verifier.verify_async(token)

    assert (await revoke(world.http, family.client, family.refresh)).status_code == 200  # the family (gid)
    await disable_account(world.services, disabled.user.account_id, actor="test")  # the person (acct)
    await AdminService(world.services).set_client_disabled(client.client_id, True, actor=Actor(via="cli"))  # client
    world.clock.advance(FRESHNESS)
    for token in (family.access, disabled.access, machine):
        with pytest.raises(InvalidToken, match="revoked"):
            await verifier.verify_async(token)
    assert await verifier.verify_async(bystander.access)
    assert await verifier.verify_async(other_machine)

    # Enabled again: tokens from before stay refused, new ones verify.
    world.clock.advance(5)
    await enable_account(world.services, disabled.user.account_id, actor="test")
    await AdminService(world.services).set_client_disabled(client.client_id, False, actor=Actor(via="cli"))
    again = await issue(world.http, world.services, client=disabled.client, user=disabled.user, scope="openid read:levels")
    new_machine = await world.cc_token(client.client_id, client.secret)
    world.clock.advance(FRESHNESS)
    for token in (disabled.access, machine):
        with pytest.raises(InvalidToken, match="revoked"):
            await verifier.verify_async(token)
    assert await verifier.verify_async(again.access)
    assert await verifier.verify_async(new_machine)


async def test_the_last_good_feed_serves_while_the_server_is_down_then_closed_refuses(world: World) -> None:
    verifier = world.verifier()
    token = (await person(world)).access
    assert await verifier.verify_async(token)
    world.transport.down = True
    world.clock.advance(FRESHNESS + MAX_STALE)  # stale for a while now, refetches failing
    assert await verifier.verify_async(token)
    world.clock.advance(1)
    with pytest.raises(RevocationUnavailable) as raised:
        await verifier.verify_async(token)
    assert raised.value.status == 503 and isinstance(raised.value, Unavailable) and not isinstance(raised.value, InvalidToken)
    # Back up: the next attempt after the retry pause fetches again and the token verifies.
    world.transport.down = False
    world.clock.advance(5)
    assert await verifier.verify_async(token)


async def test_open_accepts_valid_tokens_without_a_feed_and_warns(world: World, caplog: pytest.LogCaptureFixture) -> None:
    revoked = await person(world)
    verifier = world.verifier(on_revocation_unavailable="open")
    world.transport.down = True
    with pytest.raises(Unavailable):  # the keys were never fetched either: no verdict at all
        await verifier.verify_async(revoked.access)
    world.transport.down = False
    world.clock.advance(5)  # the key set's retry pause
    assert await verifier.verify_async(revoked.access)
    assert (await revoke(world.http, revoked.client, revoked.access)).status_code == 200
    world.transport.down = True
    world.clock.advance(FRESHNESS + MAX_STALE + 1)
    with caplog.at_level(logging.WARNING, logger="cmipro_verify"):
        assert await verifier.verify_async(revoked.access)  # the price of open: a revoked token passes
    assert any("without a revocation check" in r.getMessage() for r in caplog.records)
    with pytest.raises(InvalidToken, match="expired"):  # every other rule still holds
        world.clock.advance(3600)
        await verifier.verify_async(revoked.access)


async def test_a_forged_or_substituted_feed_is_never_trusted(world: World) -> None:
    revoked = await person(world)
    assert (await revoke(world.http, revoked.client, revoked.access)).status_code == 200
    kid = world.services.keys.signing_key(world.services.settings.tokens.signing_alg).kid
    now = int(world.now())
    empty = {"iss": ISSUER, "iat": now, "exp": now + 600, "revoked": {"jti": [], "gid": [], "acct": {}, "client": {}}}
    forger = ECKey.generate_key("P-256", private=True)
    forged = jws.serialize_compact({"alg": "ES256", "typ": "revocation-list+jwt", "kid": kid}, json.dumps(empty).encode(), forger)
    client = await make_client(world.services, grant_types=["client_credentials"], redirect_uris=[])
    access_token = await world.cc_token(client.client_id, client.secret)
    genuine = (await world.http.get("/revocations")).content
    impostors = {
        "another key": forged.encode(),
        "an access token": access_token.encode(),
        "an unsigned document": b"eyJhbGciOiJub25lIiwidHlwIjoicmV2b2NhdGlvbi1saXN0K2p3dCJ9." + forged.split(".")[1].encode() + b".",
        "garbage": b"<html>gateway error</html>",
    }
    for name, body in impostors.items():
        verifier = world.verifier()
        world.transport.feed = body
        with pytest.raises(RevocationUnavailable):  # never a verdict from it: no feed at all
            await verifier.verify_async(revoked.access)
        # After a genuine feed, an impostor does not replace it: the revoked token stays refused.
        world.transport.feed = None
        world.clock.advance(5)  # the retry pause after a failed fetch
        with pytest.raises(InvalidToken, match="revoked"):
            await verifier.verify_async(revoked.access)
        world.transport.feed = body
        world.clock.advance(FRESHNESS)
        with pytest.raises(InvalidToken, match="revoked"):
            await verifier.verify_async(revoked.access)
        world.transport.feed = None
        assert name and verifier.revocations is not None and verifier.revocations.fetches == 3

    # A genuine feed is only accepted for our issuer, and while it is current.
    world.transport.feed = genuine
    elsewhere = world.verifier(issuer="https://other.example", jwks_url=f"{ISSUER}/jwks", revocation_url=f"{ISSUER}/revocations")
    assert elsewhere.revocations is not None
    with pytest.raises(RevocationUnavailable):
        await elsewhere.revocations.check_async({"jti": "x", "iat": now})
    world.clock.advance(world.services.settings.tokens.revocation_feed_lifetime + 61)
    late = world.verifier()
    assert late.revocations is not None
    with pytest.raises(RevocationUnavailable):
        await late.revocations.check_async({"jti": "x", "iat": now})
    world.transport.feed = None


async def test_turned_off_the_verifier_never_fetches_the_feed(world: World) -> None:
    revoked = await person(world)
    assert (await revoke(world.http, revoked.client, revoked.access)).status_code == 200
    verifier = world.verifier(revocation_check=False)
    assert verifier.revocations is None
    assert await verifier.verify_async(revoked.access)
    assert world.transport.feed_statuses == []


async def test_concurrent_requests_share_one_fetch(world: World) -> None:
    verifier = world.verifier()
    token = (await person(world)).access
    await asyncio.gather(*(verifier.verify_async(token) for _ in range(20)))
    world.clock.advance(FRESHNESS)
    await asyncio.gather(*(verifier.verify_async(token) for _ in range(20)))
    assert verifier.revocations is not None and verifier.revocations.fetches == 2


async def test_the_sync_path_against_a_live_server(live: LiveServer) -> None:
    """Real HTTP, the server on the system clock: the verifier's clock is moved past the freshness and the
    refusal polled for (the server's memo may serve the feed of the previous second once)."""
    client = await make_client(live.services, grant_types=["client_credentials"], redirect_uris=[])
    assert client.secret is not None
    token = await live.token(client)
    offset = [0.0]
    # Moved one freshness per attempt: 5 s keeps it inside the token's and the feed's lifetimes throughout.
    verifier = Verifier(issuer=live.issuer, audience=AUDIENCE, clock=lambda: time.time() + offset[0],
                        revocation_freshness=5)
    assert await asyncio.to_thread(verifier.verify, token)
    async with httpx.AsyncClient(base_url=live.url) as http:
        response = await http.post("/revoke", data={"token": token}, auth=(client.client_id, client.secret))
        assert response.status_code == 200
    refused = await poll(lambda: _refused(verifier, token, offset))
    assert refused, "the revoked token was still accepted after 100 freshness periods"
    verifier.close()


def _refused(verifier: Verifier, token: str, offset: list[float]) -> bool:
    offset[0] += 5
    try:
        verifier.verify(token)
    except InvalidToken as error:
        assert "revoked" in error.description
        return True
    return False


async def poll(attempt: Callable[[], bool], *, tries: int = 100, pause: float = 0.5) -> bool:
    for _ in range(tries):
        if await asyncio.to_thread(attempt):
            return True
        await asyncio.sleep(pause)
    return False

