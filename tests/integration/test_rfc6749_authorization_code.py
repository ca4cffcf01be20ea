"""RFC 6749 §4.1 authorization code flow with PKCE, through our login and consent pages."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest
from sqlalchemy import select, update

from authserver.services import Services
from authserver.storage.errors import Expired
from authserver.storage.sql.models import AuthorizationCode, SecurityEvent
from authserver.tokens.opaque import digest
from tests.support.apps import running_app
from tests.support.factories import Person, authorize, make_client, make_user, redeem, sign_in
from tests.support.lifecycle import STRICT_ROTATION


async def test_code_flow_issues_access_refresh_and_id_tokens(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services, roles=["premium_user"])
    params, verifier = await authorize(http, client, user, extra={"nonce": "n-123"})
    assert params["state"] == "xyz"
    assert params["iss"] == "http://testserver"
    response = await redeem(http, client, params["code"], verifier)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["refresh_token"].startswith("rt_")
    access = pyjwt.decode(body["access_token"], options={"verify_signature": False})
    assert access["sub"] == user.account_id
    assert access["roles"] == ["premium_user"]
    id_token = pyjwt.decode(body["id_token"], options={"verify_signature": False})
    assert id_token["nonce"] == "n-123"
    assert id_token["aud"] == client.client_id
    assert id_token["amr"] == ["pwd"]
    assert "at_hash" in id_token and "auth_time" in id_token
    info = await http.get("/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.json()["email"] == f"{user.username}@example.org"


async def test_code_is_single_use_and_reuse_revokes_the_grant(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    params, verifier = await authorize(http, client, user)
    first = await redeem(http, client, params["code"], verifier)
    assert first.status_code == 200
    second = await redeem(http, client, params["code"], verifier)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    refreshed = await http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]},
        auth=(client.client_id, client.secret),
    )
    assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant"


async def test_parallel_redemptions_yield_exactly_one_token(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    params, verifier = await authorize(http, client, user)
    responses = await asyncio.gather(*(redeem(http, client, params["code"], verifier) for _ in range(5)))
    assert sorted(r.status_code for r in responses) == [200, 400, 400, 400, 400]


async def test_wrong_verifier_is_invalid_grant_and_leaves_the_code_usable(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    params, verifier = await authorize(http, client, user)
    wrong = await redeem(http, client, params["code"], "a" * 43)
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert (await redeem(http, client, params["code"], verifier)).status_code == 200


async def test_refresh_rotates_and_detects_reuse(database_url: str, tmp_root: Path) -> None:
    """Strict rotation (grace period 0): an immediate replay is reuse (the grace period: test_refresh_grace.py)."""
    async with running_app(database_url, tmp_root, **STRICT_ROTATION) as (_, services, http):
        client = await make_client(services)
        user = await make_user(services)
        params, verifier = await authorize(http, client, user)
        tokens = (await redeem(http, client, params["code"], verifier)).json()
        auth = (client.client_id, str(client.secret))
        first = await http.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, auth=auth)
        assert first.status_code == 200, first.text
        new_refresh = first.json()["refresh_token"]
        assert new_refresh != tokens["refresh_token"]
        replay = await http.post("/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}, auth=auth)
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
        # the replay revoked the family: the successor is dead too
        after = await http.post("/token", data={"grant_type": "refresh_token", "refresh_token": new_refresh}, auth=auth)
        assert after.status_code == 400


async def test_public_client_uses_pkce_without_secret(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, client_type="public")
    user = await make_user(services)
    params, verifier = await authorize(http, client, user)
    response = await redeem(http, client, params["code"], verifier)
    assert response.status_code == 200, response.text


async def test_failed_and_successful_sign_in_are_security_events(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    wrong = Person(user.account_id, user.username, "wrong password!!")
    verifier_params = {
        "response_type": "code", "client_id": client.client_id, "redirect_uri": "https://app.example/callback",
        "scope": "openid", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256",
    }
    start = await http.get("/authorize", params=verifier_params)
    failed = await sign_in(http, start.headers["location"], wrong)
    assert failed.status_code == 401
    ok = await sign_in(http, start.headers["location"], user)
    assert ok.status_code == 303
    await services.events.flush()
    async with services.sessions() as session:
        rows = (await session.scalars(select(SecurityEvent).where(SecurityEvent.account_id == user.account_id).order_by(SecurityEvent.id))).all()
    assert [(r.event, r.outcome) for r in rows] == [("login", "failure"), ("login", "success")]
    assert all(r.request_id for r in rows)
    stored = str([(r.details, r.user_agent) for r in rows])
    assert user.password not in stored and wrong.password not in stored


async def test_a_code_that_runs_out_before_its_claim_is_expired_not_reused(http: httpx.AsyncClient, services: Services) -> None:
    """Issue 16: the claim re-checks expiry; a code that ran out after the grant's own check is not a reuse."""
    client = await make_client(services)
    user = await make_user(services)
    params, verifier = await authorize(http, client, user)
    code = await services.tokens.get_code(digest(params["code"]))
    assert code is not None
    async with services.sessions.begin() as session:  # time passes between the grant's check and the claim
        await session.execute(
            update(AuthorizationCode).where(AuthorizationCode.code_digest == code.code_digest)
            .values(expires_at=services.clock.now() - timedelta(seconds=1))
        )
    with pytest.raises(Expired):
        await services.tokens.redeem_code(code, absolute_ttl=3600, refresh=None)
    await services.events.flush()
    async with services.sessions() as session:
        reuse = (await session.scalars(select(SecurityEvent).where(SecurityEvent.event == "code_reuse", SecurityEvent.client_id == client.client_id))).all()
    assert reuse == []
    answer = await redeem(http, client, params["code"], verifier)
    assert answer.status_code == 400 and answer.json()["error_description"] == "The authorization code has expired."
