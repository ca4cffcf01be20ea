"""Races of the token lifecycle, run many times on each backend (SPEC R-07, R-08, R-09):

- ten parallel refreshes of one token: exactly one wins, the family never forks, and under the strict
  policy (grace period 0, set for this module) the losers' reuse revokes it, the winner's tokens included
  (with the grace period: tests/integration/test_refresh_grace.py);
- five parallel redemptions of one code: exactly one wins, and (pinned) the duplicates count as reuse, so
  the winner's tokens are revoked;
- a refresh racing a revocation of the same family: once /revoke has answered 200, nothing the refresh
  minted is still usable.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import httpx
import pytest

from authserver.services import Services
from authserver.settings import Settings
from authserver.tokens.opaque import digest
from tests.support.factories import authorize, make_client, make_user, redeem
from tests.support.lifecycle import (
    is_active,
    issue,
    live_refresh_tokens,
    refresh,
    resource_server,
    revoke,
    strict_settings,
)

# Rounds per test and backend; a soak run sets e.g. AUTHSERVER_RACE_ROUNDS=300 (docs/token-lifecycle.md).
ROUNDS = int(os.environ.get("AUTHSERVER_RACE_ROUNDS", "6"))


@pytest.fixture
def settings(backend: str, database_url: str, tmp_root: Path) -> Settings:
    return strict_settings(backend, database_url, tmp_root)


async def _grant_of(services: Services, refresh_token: str) -> str:
    found = await services.tokens.get_refresh_token(digest(refresh_token))
    assert found is not None
    return found[1].grant_id


async def test_parallel_refresh_never_forks_a_family(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    rs = await resource_server(services)
    for _ in range(ROUNDS):
        issued = await issue(http, services, client=client, user=user)
        grant_id = await _grant_of(services, issued.refresh)
        responses = await asyncio.gather(*(refresh(http, client, issued.refresh) for _ in range(10)))
        winners = [r for r in responses if r.status_code == 200]
        assert len(winners) == 1, [r.status_code for r in responses]
        assert all(r.status_code == 400 and r.json()["error"] == "invalid_grant" for r in responses if r.status_code != 200)
        # Strict policy: the losers were reuse, so the family is revoked, the winner's tokens with it.
        assert await live_refresh_tokens(services, grant_id) == 0
        assert (await refresh(http, client, winners[0].json()["refresh_token"])).status_code == 400
        assert not await is_active(http, rs, winners[0].json()["access_token"])


async def test_parallel_code_redemption_yields_one_token_set_then_revokes_it(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    rs = await resource_server(services)
    for _ in range(ROUNDS):
        params, verifier = await authorize(http, client, user)
        responses = await asyncio.gather(*(redeem(http, client, params["code"], verifier) for _ in range(5)))
        winners = [r for r in responses if r.status_code == 200]
        assert len(winners) == 1, [r.status_code for r in responses]
        tokens = winners[0].json()
        grant_id = await _grant_of(services, tokens["refresh_token"])
        assert await live_refresh_tokens(services, grant_id) == 0
        assert not await is_active(http, rs, tokens["access_token"])
        assert (await refresh(http, client, tokens["refresh_token"])).status_code == 400


async def test_refresh_racing_a_revocation_leaves_nothing_alive(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    rs = await resource_server(services)
    for round_number in range(ROUNDS * 2):
        issued = await issue(http, services, client=client, user=user)
        grant_id = await _grant_of(services, issued.refresh)
        racers = [refresh(http, client, issued.refresh), revoke(http, client, issued.refresh)]
        if round_number % 2:
            racers.reverse()
        results = await asyncio.gather(*racers)
        refreshed, revoked = (results[0], results[1]) if round_number % 2 == 0 else (results[1], results[0])
        assert revoked.status_code == 200
        assert await live_refresh_tokens(services, grant_id) == 0
        assert not await is_active(http, rs, issued.access)
        if refreshed.status_code == 200:
            minted = refreshed.json()
            assert not await is_active(http, rs, minted["access_token"])
            assert (await refresh(http, client, minted["refresh_token"])).status_code == 400
        else:
            assert refreshed.json()["error"] == "invalid_grant"
