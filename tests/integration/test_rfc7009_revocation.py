"""RFC 7009 token revocation: client authentication, own tokens only, hints ignored, 200 for unknown tokens,
family revocation, and a deny list that survives a cache flush."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from authserver.services import Services
from authserver.storage.sql.models import DenyListEntry, SecurityEvent
from tests.support.factories import make_client
from tests.support.lifecycle import is_active, issue, refresh, resource_server, revoke


async def test_revoking_a_refresh_token_revokes_its_family_and_access_tokens(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    rs = await resource_server(services)
    rotated = await refresh(http, issued.client, issued.refresh)
    assert rotated.status_code == 200
    second_access = rotated.json()["access_token"]
    assert await is_active(http, rs, issued.access) and await is_active(http, rs, second_access)

    response = await revoke(http, issued.client, rotated.json()["refresh_token"], token_type_hint="refresh_token")
    assert response.status_code == 200 and response.content == b""
    assert response.headers["cache-control"] == "no-store"
    assert not await is_active(http, rs, issued.access)
    assert not await is_active(http, rs, second_access)
    assert (await refresh(http, issued.client, rotated.json()["refresh_token"])).status_code == 400
    info = await http.get("/userinfo", headers={"Authorization": f"Bearer {second_access}"})
    assert info.status_code == 401


async def test_revoking_an_access_token_revokes_only_that_token(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    rs = await resource_server(services)
    # A wrong hint is only a hint: the access token is found anyway (RFC 7009 §2.1).
    assert (await revoke(http, issued.client, issued.access, token_type_hint="refresh_token")).status_code == 200
    assert not await is_active(http, rs, issued.access)
    assert (await http.get("/userinfo", headers={"Authorization": f"Bearer {issued.access}"})).status_code == 401
    # The refresh token still works (pinned: revoking an access token does not end the family).
    assert (await refresh(http, issued.client, issued.refresh)).status_code == 200


async def test_unknown_hint_unknown_token_and_repeated_revocation_answer_200(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    for token in ("not-a-token", "rt_" + "x" * 43, "a.b.c", issued.refresh, issued.refresh):
        response = await revoke(http, issued.client, token, token_type_hint="weird_type")
        assert response.status_code == 200, response.text


async def test_a_client_cannot_revoke_another_clients_tokens(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    other = await make_client(services)
    rs = await resource_server(services)
    for token in (issued.refresh, issued.access):
        response = await revoke(http, other, token)
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    assert await is_active(http, rs, issued.access)
    assert (await refresh(http, issued.client, issued.refresh)).status_code == 200


async def test_revocation_requires_client_authentication(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    rs = await resource_server(services)
    no_auth = await http.post("/revoke", data={"token": issued.refresh})
    assert no_auth.status_code == 401 and no_auth.json()["error"] == "invalid_client"
    wrong = await http.post("/revoke", data={"token": issued.refresh}, auth=(issued.client.client_id, "cs_wrong"))
    assert wrong.status_code == 401 and "WWW-Authenticate" in wrong.headers
    # A confidential client may not drop its secret and pose as public.
    as_public = await http.post("/revoke", data={"token": issued.refresh, "client_id": issued.client.client_id})
    assert as_public.status_code == 401
    assert await is_active(http, rs, issued.access)
    assert (await http.get("/revoke")).status_code == 405
    missing = await http.post("/revoke", data={}, auth=(issued.client.client_id, issued.client.secret))
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


async def test_public_client_revokes_its_refresh_token_with_its_client_id(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services, client_type="public")
    assert (await revoke(http, issued.client, issued.refresh)).status_code == 200
    assert (await refresh(http, issued.client, issued.refresh)).status_code == 400


async def test_client_credentials_token_can_be_revoked(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    rs = await resource_server(services)
    token = (await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))).json()["access_token"]
    assert await is_active(http, rs, token)
    assert (await revoke(http, client, token)).status_code == 200
    assert not await is_active(http, rs, token)


async def test_revoked_jti_is_durable_and_survives_a_cache_flush(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    rs = await resource_server(services)
    assert (await revoke(http, issued.client, issued.access)).status_code == 200
    claims = services.signer.verify_access_token(issued.access)
    assert claims is not None
    async with services.sessions() as session:
        row = await session.get(DenyListEntry, f"jti:{claims['jti']}")
    assert row is not None and int(row.expires_at.timestamp()) >= claims["exp"]
    # Lose the cache's copy (what a Redis flush or restart does to our keys).
    await services.cache.delete(f"deny:jti:{claims['jti']}")
    await services.cache.delete("deny:loaded")
    assert not await is_active(http, rs, issued.access)
    assert await services.cache.get(f"deny:jti:{claims['jti']}") == "inf"


async def test_revocation_is_a_security_event(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    assert (await revoke(http, issued.client, issued.refresh)).status_code == 200
    await services.events.flush()
    async with services.sessions() as session:
        rows = (await session.scalars(select(SecurityEvent).where(SecurityEvent.event == "token_revoked", SecurityEvent.account_id == issued.user.account_id))).all()
    assert [r.details["token_type"] for r in rows] == ["refresh_token"]
    assert issued.refresh not in str([r.details for r in rows])

