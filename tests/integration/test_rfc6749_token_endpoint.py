"""Token endpoint (RFC 6749 §3.2, §4.1.3, §5, §6, §10.4-10.5): client authentication, code and refresh binding,
lifetimes on a FrozenClock, cache headers, and a clean 503 when the database is down."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from authserver.clock import FrozenClock
from authserver.services import Services
from tests.support.apps import running_app
from tests.support.factories import AppClient, authorize, make_client, make_user, redeem
from tests.support.lifecycle import STRICT_ROTATION


async def refresh(http: httpx.AsyncClient, client: AppClient, token: str, **extra: str) -> httpx.Response:
    return await http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": token, **extra}, auth=(client.client_id, str(client.secret))
    )


async def code_for(http: httpx.AsyncClient, services: Services, client: AppClient, **kwargs: object) -> tuple[str, str]:
    params, verifier = await authorize(http, client, await make_user(services), **kwargs)  # type: ignore[arg-type]
    return params["code"], verifier


@pytest.fixture
async def frozen(database_url: str, tmp_root: Path) -> AsyncIterator[tuple[Services, httpx.AsyncClient, FrozenClock]]:
    clock = FrozenClock()
    async with running_app(database_url, tmp_root, clock=clock) as (_, services, http):
        yield services, http, clock


async def test_code_lives_at_most_60_seconds(frozen: tuple[Services, httpx.AsyncClient, FrozenClock]) -> None:
    services, http, clock = frozen
    client = await make_client(services)
    fresh, fresh_verifier = await code_for(http, services, client)
    old, old_verifier = await code_for(http, services, client)
    clock.advance(59)
    assert (await redeem(http, client, fresh, fresh_verifier)).status_code == 200
    clock.advance(2)
    expired = await redeem(http, client, old, old_verifier)
    assert expired.status_code == 400 and expired.json()["error"] == "invalid_grant"


async def test_refresh_token_expires_after_idle_time(frozen: tuple[Services, httpx.AsyncClient, FrozenClock]) -> None:
    services, http, clock = frozen
    client = await make_client(services, refresh_token_idle_ttl=3600)
    code, verifier = await code_for(http, services, client)
    tokens = (await redeem(http, client, code, verifier)).json()
    clock.advance(3601)
    response = await refresh(http, client, tokens["refresh_token"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_code_is_bound_to_the_client(http: httpx.AsyncClient, services: Services) -> None:
    owner = await make_client(services)
    thief = await make_client(services)
    code, verifier = await code_for(http, services, owner)
    stolen = await redeem(http, thief, code, verifier)
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    public_thief = await make_client(services, client_type="public")
    assert (await redeem(http, public_thief, code, verifier)).json()["error"] == "invalid_grant"
    assert (await redeem(http, owner, code, verifier)).status_code == 200


async def test_code_carries_user_scopes_nonce_and_auth_time(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    params, verifier = await authorize(http, client, user, scope="openid read:levels", extra={"nonce": "nn"})
    body = (await redeem(http, client, params["code"], verifier)).json()
    assert body["scope"] == "openid read:levels"
    id_token = pyjwt.decode(body["id_token"], options={"verify_signature": False})
    access = pyjwt.decode(body["access_token"], options={"verify_signature": False})
    assert id_token["sub"] == access["sub"] == user.account_id
    assert id_token["nonce"] == "nn" and id_token["auth_time"] == access["auth_time"]


async def test_token_responses_are_never_cached(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    code, verifier = await code_for(http, services, client)
    for response in (await redeem(http, client, code, verifier), await redeem(http, client, code, verifier)):
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"
        assert response.headers["content-type"] == "application/json"


async def test_client_secret_post_and_basic_both_work(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, token_endpoint_auth_method="client_secret_post")
    code, verifier = await code_for(http, services, client)
    response = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": "https://app.example/callback",
            "code_verifier": verifier, "client_id": client.client_id, "client_secret": str(client.secret),
        },
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("auth", "data", "basic"),
    [
        (("CLIENT", "wrong-secret"), {}, True),
        (("unknown-client", "secret"), {}, True),
        (None, {"client_id": "CLIENT", "client_secret": "wrong"}, False),
        (None, {"client_id": "CLIENT"}, False),  # confidential client without a secret
        (None, {}, False),
    ],
)
async def test_failed_client_authentication_is_invalid_client(
    http: httpx.AsyncClient, services: Services, auth: tuple[str, str] | None, data: dict[str, str], basic: bool
) -> None:
    client = await make_client(services)
    fill = {k: v.replace("CLIENT", client.client_id) for k, v in data.items()}
    basic_auth = (auth[0].replace("CLIENT", client.client_id), auth[1]) if auth else None
    response = await http.post("/token", data={"grant_type": "client_credentials", **fill}, auth=basic_auth)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client"
    assert response.headers["cache-control"] == "no-store"
    if basic:
        assert response.headers["www-authenticate"].startswith("Basic")


async def test_other_authorization_schemes_are_401_with_www_authenticate(http: httpx.AsyncClient) -> None:
    response = await http.post("/token", data={"grant_type": "client_credentials"}, headers={"Authorization": "Bearer abc"})
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Basic")


async def test_public_client_cannot_present_a_secret_and_confidential_must(http: httpx.AsyncClient, services: Services) -> None:
    public = await make_client(services, client_type="public")
    response = await http.post("/token", data={"grant_type": "authorization_code", "client_id": public.client_id, "client_secret": "x"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("grant_type", "error"), [("password", "unsupported_grant_type"), ("implicit", "unsupported_grant_type"), ("", "invalid_request")]
)
async def test_unsupported_or_missing_grant_type(http: httpx.AsyncClient, services: Services, grant_type: str, error: str) -> None:
    client = await make_client(services)
    data = {"grant_type": grant_type, "username": "a", "password": "b"} if grant_type else {}
    response = await http.post("/token", data=data, auth=(client.client_id, str(client.secret)))
    assert response.status_code == 400 and response.json()["error"] == error


async def test_refresh_token_is_bound_to_its_client(http: httpx.AsyncClient, services: Services) -> None:
    """oidcc-refresh-token: client 2 using client 1's refresh token → invalid_grant; client 1's token lives on."""
    first = await make_client(services)
    second = await make_client(services)
    code, verifier = await code_for(http, services, first)
    tokens = (await redeem(http, first, code, verifier)).json()
    stolen = await refresh(http, second, tokens["refresh_token"])
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert (await refresh(http, first, tokens["refresh_token"])).status_code == 200


async def test_refresh_scope_can_narrow_never_widen(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    code, verifier = await code_for(http, services, client, scope="openid read:levels offline_access")
    tokens = (await redeem(http, client, code, verifier)).json()
    wider = await refresh(http, client, tokens["refresh_token"], scope="openid read:levels write:alerts")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    narrow = await refresh(http, client, tokens["refresh_token"], scope="read:levels")
    assert narrow.status_code == 200
    body = narrow.json()
    assert body["scope"] == "read:levels" and "id_token" not in body
    access = pyjwt.decode(body["access_token"], options={"verify_signature": False})
    assert access["scope"] == "read:levels"
    # RFC 6749 §6: the new refresh token keeps the original grant's scope; only that access token was narrowed
    again = (await refresh(http, client, body["refresh_token"])).json()
    assert set(again["scope"].split()) == {"openid", "read:levels", "offline_access"}
    assert set(pyjwt.decode(again["access_token"], options={"verify_signature": False})["scope"].split()) == set(again["scope"].split())
    # and narrowing twice in a row still narrows from the full grant
    narrower = (await refresh(http, client, again["refresh_token"], scope="openid")).json()
    assert narrower["scope"] == "openid"
    last = (await refresh(http, client, narrower["refresh_token"])).json()
    assert set(last["scope"].split()) == {"openid", "read:levels", "offline_access"}


async def test_refresh_tokens_are_long_random_and_rotated(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    code, verifier = await code_for(http, services, client)
    tokens = (await redeem(http, client, code, verifier)).json()
    seen = {tokens["refresh_token"]}
    value = tokens["refresh_token"]
    for _ in range(3):
        value = (await refresh(http, client, value)).json()["refresh_token"]
        assert value not in seen and len(value) >= 43
        seen.add(value)


async def test_rejected_token_request_leaves_the_code_redeemable(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    code, verifier = await code_for(http, services, client)
    auth = (client.client_id, str(client.secret))
    base = {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://app.example/callback", "code_verifier": verifier}
    rejected = [
        await http.post("/token", json=base, auth=auth),
        await http.post("/token", content="&".join(f"{k}={v}" for k, v in base.items()) + f"&code={code}",
                        headers={"Content-Type": "application/x-www-form-urlencoded"}, auth=auth),
        await http.post("/token", data=base | {"redirect_uri": "https://evil.example/cb"}, auth=auth),
        await http.post("/token", data=base, auth=(client.client_id, "wrong")),
        await http.post("/token", data=base | {"client_secret": "x"}, auth=auth),
    ]
    assert [r.status_code for r in rejected] == [400, 400, 400, 401, 400]
    assert (await redeem(http, client, code, verifier)).status_code == 200


async def test_database_down_is_503_temporarily_unavailable(database_url: str, tmp_root: Path) -> None:
    """SPEC R-01: fail closed with 503 + Retry-After; discovery and JWKS stay up from memory."""
    async with running_app(database_url, tmp_root) as (_, services, http):
        client = await make_client(services)
        code, verifier = await code_for(http, services, client)
        dead = create_async_engine(
            "postgresql+asyncpg://postgres@127.0.0.1:1/nothing", connect_args={"timeout": 2}, pool_pre_ping=True
        )
        services.sessions.configure(bind=dead)
        services.clients.forget(client.client_id)
        try:
            response = await redeem(http, client, code, verifier)
            assert response.status_code == 503
            assert response.json()["error"] == "temporarily_unavailable"
            assert response.headers["retry-after"].isdigit()
            assert response.headers["cache-control"] == "no-store"
            machine = await http.post("/token", data={"grant_type": "client_credentials"}, auth=("someone", "secret"))
            assert machine.status_code == 503
            page = await http.get("/authorize", params={"client_id": "x", "response_type": "code"})
            assert page.status_code == 503 and "location" not in page.headers and "retry-after" in page.headers
            assert (await http.get("/jwks")).status_code == 200
            assert (await http.get("/.well-known/openid-configuration")).status_code == 200
        finally:
            services.sessions.configure(bind=services.engine)
            await dead.dispose()
        # nothing was consumed: the code still works once the database is back
        assert (await redeem(http, client, code, verifier)).status_code == 200


async def test_parallel_refreshes_never_fork_the_family(database_url: str, tmp_root: Path) -> None:
    """SPEC R-07 (strict policy, grace period 0): exactly one winner; the losers are reuse, which revokes the family."""
    async with running_app(database_url, tmp_root, **STRICT_ROTATION) as (_, services, http):
        client = await make_client(services)
        code, verifier = await code_for(http, services, client)
        tokens = (await redeem(http, client, code, verifier)).json()
        responses = await asyncio.gather(*(refresh(http, client, tokens["refresh_token"]) for _ in range(5)))
        assert sorted(r.status_code for r in responses) == [200, 400, 400, 400, 400]
        winner = next(r for r in responses if r.status_code == 200).json()
        assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code == 400)
        assert (await refresh(http, client, winner["refresh_token"])).status_code == 400
