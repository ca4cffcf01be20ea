"""Issue 12: a revocation reaches offline verifiers through any instance. Two real server processes share
PostgreSQL and Redis; a token is revoked at instance A and a cmipro_verify Verifier whose feed and keys
come from instance B refuses it within its freshness.

The verifier's clock is moved past the freshness (no timed assertion); the refusal is polled for with a
generous bound, since B's once-a-second memo may serve the feed of the previous second once.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from authserver.admin.service import Actor, AdminService
from authserver.app import build_services
from authserver.settings import load_settings
from authserver.storage.sql.migrate import upgrade
from cmipro_verify import InvalidToken, Verifier
from tests.conftest import REDIS_URL, create_pg_database, delete_redis_prefix, drop_pg_database, fast_passwords
from tests.support.servers import ServerProcess, cluster_settings_env, free_port, server_env

ISSUER = "http://127.0.0.1:9"  # the load balancer's address: the same issuer on both instances
AUDIENCE = "https://api.cmipro.example"
# Small, so that the verifier's clock, moved one freshness per attempt, stays well inside the tokens' and
# the feed's lifetimes over all attempts (100 × 5 s < 600 s).
FRESHNESS = 5.0


@pytest.fixture(scope="module")
async def pair(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[list[ServerProcess], dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("feed-pair")
    name = await create_pg_database()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    await asyncio.to_thread(upgrade, url)
    prefix = f"authserver-feed-{secrets.token_hex(4)}:"
    settings_env = cluster_settings_env(issuer=ISSUER, database_url=url, redis_url=REDIS_URL, key_prefix=prefix)
    servers = [ServerProcess(free_port(), server_env(settings_env), tmp / f"server{i}.log") for i in range(2)]
    for server in servers:
        server.start()
    try:
        await asyncio.gather(*(server.wait_ready() for server in servers))
        yield servers, settings_env
    finally:
        for server in servers:
            server.stop()
        await drop_pg_database(name)
        await delete_redis_prefix(prefix)


async def refused_within_polling(verifier: Verifier, token: str, offset: list[float]) -> bool:
    """Move the verifier's clock one freshness ahead per attempt until the token is refused."""
    for _ in range(100):  # about a minute at most on a busy machine; normally the first or second attempt
        offset[0] += FRESHNESS
        try:
            await verifier.verify_async(token)
        except InvalidToken as error:
            assert "revoked" in error.description
            return True
        await asyncio.sleep(0.5)
    return False


async def test_a_revocation_at_one_instance_reaches_a_verifier_fed_by_the_other(
    pair: tuple[list[ServerProcess], dict[str, str]],
) -> None:
    (a, b), settings_env = pair
    services = build_services(load_settings(settings_env), passwords=fast_passwords())
    try:
        created = await AdminService(services).create_client({
            "client_id": f"feed-{secrets.token_hex(3)}", "client_type": "confidential", "name": "Feed test",
            "grant_types": ["client_credentials"], "scopes": ["read:levels"], "audience": [AUDIENCE],
        }, actor=Actor(via="cli"))
        other = await AdminService(services).create_client({
            "client_id": f"feed-other-{secrets.token_hex(3)}", "client_type": "confidential", "name": "Feed bystander",
            "grant_types": ["client_credentials"], "scopes": ["read:levels"], "audience": [AUDIENCE],
        }, actor=Actor(via="cli"))
    finally:
        await services.close()
    auth = (created["client_id"], created["client_secret"])
    async with httpx.AsyncClient(timeout=10) as http:
        async def token_from(server: ServerProcess, credentials: tuple[str, str]) -> str:
            response = await http.post(f"{server.url}/token", data={"grant_type": "client_credentials"}, auth=credentials)
            assert response.status_code == 200, response.text
            return str(response.json()["access_token"])

        revoked, kept = await token_from(a, auth), await token_from(a, auth)
        bystander = await token_from(b, (other["client_id"], other["client_secret"]))
        offset = [0.0]
        verifier = Verifier(
            issuer=ISSUER, audience=AUDIENCE, jwks_url=f"{b.url}/jwks", revocation_url=f"{b.url}/revocations",
            revocation_freshness=FRESHNESS, clock=lambda: time.time() + offset[0],
        )
        try:
            assert await verifier.verify_async(revoked)
            assert (await http.post(f"{a.url}/revoke", data={"token": revoked}, auth=auth)).status_code == 200
            assert await refused_within_polling(verifier, revoked, offset), "B's feed never carried A's revocation"
            assert await verifier.verify_async(kept)

            # Disabling the client (through the shared database, as the CLI does) reaches B's feed too.
            services = build_services(load_settings(settings_env), passwords=fast_passwords())
            try:
                await AdminService(services).set_client_disabled(created["client_id"], True, actor=Actor(via="cli"))
            finally:
                await services.close()
            assert await refused_within_polling(verifier, kept, offset), "B's feed never carried the disabled client"
            assert await verifier.verify_async(bystander)
        finally:
            await verifier.aclose()
