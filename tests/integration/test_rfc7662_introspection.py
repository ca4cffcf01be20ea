"""RFC 7662 token introspection: who may ask, what an active token reports, and {"active": false} for
anything expired, revoked, malformed or foreign."""

from __future__ import annotations

from pathlib import Path

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

from authserver.services import Services
from tests.support.factories import make_client
from tests.support.lifecycle import frozen_app, introspect, is_active, issue, resource_server


async def test_active_access_token_reports_its_claims(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    rs = await resource_server(services)
    body = await introspect(http, rs, issued.access, token_type_hint="no_such_hint")
    assert body["active"] is True
    assert body["client_id"] == issued.client.client_id and body["sub"] == issued.user.account_id
    assert body["iss"] == "http://testserver" and body["token_type"] == "Bearer"
    assert "read:levels" in body["scope"].split() and body["aud"] == ["https://api.cmipro.example", "http://testserver/userinfo"]
    assert isinstance(body["exp"], int) and isinstance(body["iat"], int) and body["exp"] > body["iat"]


async def test_an_access_token_is_described_only_to_its_audience_or_its_client(http: httpx.AsyncClient, services: Services) -> None:
    """RFC 7662 §4: a resource server of another API learns nothing of a token that is not for it."""
    issued = await issue(http, services, can_introspect=True)
    other_api = await make_client(
        services, grant_types=["client_credentials"], redirect_uris=[], can_introspect=True, audience=["https://alerts.cmipro.example"],
    )
    assert await introspect(http, other_api, issued.access) == {"active": False}
    no_audience = await make_client(services, grant_types=["client_credentials"], redirect_uris=[], can_introspect=True, audience=[])
    assert await introspect(http, no_audience, issued.access) == {"active": False}
    own = await introspect(http, issued.client, issued.access)
    assert own["active"] is True and own["sub"] == issued.user.account_id
    rs = await resource_server(services)
    assert (await introspect(http, rs, issued.access))["sub"] == issued.user.account_id


async def test_refresh_token_is_active_only_for_its_own_client(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services, can_introspect=True)
    own = await introspect(http, issued.client, issued.refresh)
    assert own["active"] is True and own["token_type"] == "refresh_token" and own["sub"] == issued.user.account_id
    rs = await resource_server(services)
    assert await introspect(http, rs, issued.refresh) == {"active": False}


async def test_only_clients_allowed_to_introspect_may_call(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    # An authenticated client without can_introspect.
    denied = await http.post("/introspect", data={"token": issued.access}, auth=(issued.client.client_id, issued.client.secret))
    assert denied.status_code == 401 and denied.json()["error"] == "invalid_client"
    assert "WWW-Authenticate" in denied.headers
    public = await make_client(services, client_type="public", can_introspect=True)
    as_public = await http.post("/introspect", data={"token": issued.access, "client_id": public.client_id})
    assert as_public.status_code == 401
    anonymous = await http.post("/introspect", data={"token": issued.access})
    assert anonymous.status_code == 401
    rs = await resource_server(services)
    wrong_secret = await http.post("/introspect", data={"token": issued.access}, auth=(rs.client_id, "cs_nope"))
    assert wrong_secret.status_code == 401
    missing = await http.post("/introspect", data={}, auth=(rs.client_id, rs.secret))
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    assert (await http.get("/introspect")).status_code == 405


async def test_malformed_and_foreign_tokens_are_inactive(http: httpx.AsyncClient, services: Services) -> None:
    rs = await resource_server(services)
    foreign_key = ECKey.generate_key("P-256")
    foreign = jwt.encode(
        {"alg": "ES256", "typ": "at+jwt", "kid": "x"},
        {"iss": "http://testserver", "sub": "someone", "exp": 4102444800, "iat": 1, "jti": "j", "client_id": rs.client_id},
        foreign_key,
    )
    issued = await issue(http, services)
    header, payload, signature = issued.access.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    for token in ("garbage", "a.b.c", "rt_unknown", foreign, tampered, "x.y.z" * 100):
        assert await introspect(http, rs, token) == {"active": False}, token


async def test_expired_tokens_are_inactive(backend: str, database_url: str, tmp_root: Path) -> None:
    async with frozen_app(backend, database_url, tmp_root) as (http, services, clock):
        issued = await issue(http, services, access_token_ttl=300, refresh_token_idle_ttl=600, can_introspect=True)
        rs = await resource_server(services)
        assert await is_active(http, rs, issued.access)
        assert await is_active(http, issued.client, issued.refresh)
        clock.advance(301)
        assert await introspect(http, rs, issued.access) == {"active": False}
        assert await is_active(http, issued.client, issued.refresh)
        clock.advance(300)
        assert await introspect(http, issued.client, issued.refresh) == {"active": False}


async def test_tokens_of_a_disabled_client_are_inactive(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    rs = await resource_server(services)
    await services.clients.set_disabled(issued.client.client_id, True)
    assert await introspect(http, rs, issued.access) == {"active": False}


async def test_deny_list_is_checked_in_the_database_when_the_cache_is_down(backend: str, database_url: str, tmp_root: Path, http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    rs = await resource_server(services)
    await http.post("/revoke", data={"token": issued.access}, auth=(issued.client.client_id, issued.client.secret))
    other = await issue(http, services)
    # A second instance whose cache is unreachable (nothing listens on port 1).
    async with frozen_app(backend, database_url, tmp_root, AUTHSERVER_CACHE__URL="redis://127.0.0.1:1/0") as (down, _, _):
        assert await introspect(down, rs, issued.access) == {"active": False}
        assert await is_active(down, rs, other.access)
