"""The one-statement refresh rotation on PostgreSQL (authserver/storage/sql/fastpath.py).

It must decide exactly what the general path decides, change nothing when it refuses, and let one of
many parallel callers win. The whole suite's refresh tests run through it on PostgreSQL; these pin the
statement itself.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select, update

from authserver.accounts.lifecycle import disable_account
from authserver.services import Services
from authserver.storage.sql.models import RefreshToken
from authserver.tokens.opaque import REFRESH_PREFIX, digest, new_secret
from tests.support.lifecycle import issue, live_refresh_tokens, refresh

# The statement is PostgreSQL's; SQLite has only the general path (see the last test).
POSTGRES = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


@pytest.fixture
def fast(services: Services):  # type: ignore[no-untyped-def]
    assert services.fast_path is not None
    return services.fast_path


async def _rotate(services: Services, token: str, client_id: str):  # type: ignore[no-untyped-def]
    assert services.fast_path is not None
    return await services.fast_path.rotate_refresh_token(
        digest(token), client_id=client_id, new_digest=digest(new_secret(REFRESH_PREFIX)), idle_ttl=3600,
        now=services.clock.now(),
    )


@POSTGRES
async def test_rotation_consumes_the_token_and_stores_one_successor(fast, http: httpx.AsyncClient, services: Services) -> None:  # type: ignore[no-untyped-def]
    issued = await issue(http, services)
    rotated = await _rotate(services, issued.refresh, issued.client.client_id)
    assert rotated is not None
    assert rotated.account_id == issued.user.account_id
    assert rotated.roles == ["free_user"] and "pwd" in rotated.amr and rotated.auth_time is not None
    assert "offline_access" in rotated.scopes and rotated.audience == ["https://api.cmipro.example", "http://testserver/userinfo"]
    found = await services.tokens.get_refresh_token(digest(issued.refresh))
    assert found is not None and found[0].consumed_at is not None
    assert await live_refresh_tokens(services, rotated.grant_id) == 1
    # A second use is refused without changing anything (the general path then calls it reuse).
    assert await _rotate(services, issued.refresh, issued.client.client_id) is None
    assert await live_refresh_tokens(services, rotated.grant_id) == 1


@POSTGRES
async def test_rotation_restores_the_family_scope_of_a_token_stored_narrowed(fast, http: httpx.AsyncClient, services: Services) -> None:  # type: ignore[no-untyped-def]
    """Before RFC 6749 §6 was followed, a narrowing refresh stored its successor with the narrowed scope;
    rotating such a token gives back the family's (the original grant's) scope."""
    issued = await issue(http, services)
    found = await services.tokens.get_refresh_token(digest(issued.refresh))
    assert found is not None
    async with services.sessions.begin() as session:
        await session.execute(
            update(RefreshToken).where(RefreshToken.token_digest == digest(issued.refresh)).values(scopes=["read:levels"])
        )
    rotated = await _rotate(services, issued.refresh, issued.client.client_id)
    assert rotated is not None and rotated.scopes == list(found[1].scopes) and "offline_access" in rotated.scopes
    async with services.sessions() as session:
        stored = (await session.scalars(
            select(RefreshToken.scopes).where(RefreshToken.grant_id == rotated.grant_id, RefreshToken.consumed_at.is_(None))
        )).all()
    assert [list(s) for s in stored] == [list(found[1].scopes)]


@POSTGRES
async def test_refusals_change_nothing(fast, http: httpx.AsyncClient, services: Services) -> None:  # type: ignore[no-untyped-def]
    issued = await issue(http, services)
    grant_id = (await services.tokens.get_refresh_token(digest(issued.refresh)))[1].grant_id  # type: ignore[index]
    assert await _rotate(services, issued.refresh, "another-client") is None
    assert await _rotate(services, REFRESH_PREFIX + "unknown", issued.client.client_id) is None
    await disable_account(services, issued.user.account_id, actor="test")
    assert await _rotate(services, issued.refresh, issued.client.client_id) is None
    found = await services.tokens.get_refresh_token(digest(issued.refresh))
    assert found is not None and found[0].consumed_at is None
    assert grant_id == found[1].grant_id


@POSTGRES
async def test_one_of_many_parallel_rotations_wins(fast, http: httpx.AsyncClient, services: Services) -> None:  # type: ignore[no-untyped-def]
    for _ in range(5):
        issued = await issue(http, services)
        results = await asyncio.gather(*(_rotate(services, issued.refresh, issued.client.client_id) for _ in range(8)))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert await live_refresh_tokens(services, winners[0].grant_id) == 1


@POSTGRES
async def test_a_database_outage_is_a_503_and_consumes_nothing(fast, http: httpx.AsyncClient, services: Services) -> None:  # type: ignore[no-untyped-def]
    issued = await issue(http, services)
    await fast.close()
    fast._dsn = "postgresql://postgres@127.0.0.1:1/nothing"  # nobody listens on port 1
    answer = await refresh(http, issued.client, issued.refresh)
    assert answer.status_code == 503 and answer.json()["error"] == "temporarily_unavailable"
    assert answer.headers["retry-after"]
    found = await services.tokens.get_refresh_token(digest(issued.refresh))
    assert found is not None and found[0].consumed_at is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_rotates_through_the_general_path(http: httpx.AsyncClient, services: Services) -> None:
    assert services.fast_path is None
    issued = await issue(http, services)
    assert (await refresh(http, issued.client, issued.refresh)).status_code == 200
