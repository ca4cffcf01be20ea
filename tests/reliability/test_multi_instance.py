"""SPEC.md R-12 and R-13: three server processes behind one issuer, sharing PostgreSQL and Redis.

Requests are spread across the instances as a round-robin load balancer without stickiness would.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from authserver.settings import load_settings
from authserver.storage.sql.migrate import upgrade
from authserver.storage.sql.models import RefreshToken, SigningKey
from tests.conftest import REDIS_URL, create_pg_database, delete_redis_prefix, drop_pg_database
from tests.support.factories import REDIRECT_URI, form_field, pkce_pair, query_of
from tests.support.servers import ServerProcess, free_port, server_env

ISSUER = "http://127.0.0.1:9"  # the load balancer's address: the same issuer on every instance
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[list[ServerProcess], str, str]]:
    tmp = tmp_path_factory.mktemp("cluster")
    name = await create_pg_database()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    await asyncio.to_thread(upgrade, url)
    prefix = f"authserver-cluster-{secrets.token_hex(4)}:"
    settings_env = {
        "AUTHSERVER_SERVER__ISSUER": ISSUER,
        "AUTHSERVER_SERVER__COOKIE_SECURE": "false",
        "AUTHSERVER_SERVER__DEMO": "false",
        "AUTHSERVER_DATABASE__URL": url,
        "AUTHSERVER_CACHE__URL": REDIS_URL,
        "AUTHSERVER_CACHE__KEY_PREFIX": prefix,
        "AUTHSERVER_SECURITY__ENCRYPTION_KEYS": '{"k1": "' + secrets.token_urlsafe(32) + '"}',
        "AUTHSERVER_SECURITY__ACTIVE_ENCRYPTION_KEY": "k1",
    }
    servers = [ServerProcess(free_port(), server_env(settings_env), tmp / f"server{i}.log") for i in range(3)]
    for server in servers:  # all at once: first-start key creation must not race
        server.start()
    try:
        await asyncio.gather(*(server.wait_ready() for server in servers))
        secret = await _provision(load_settings(settings_env))
        yield servers, url, secret
    finally:
        for server in servers:
            server.stop()
        await drop_pg_database(name)
        await delete_redis_prefix(prefix)


async def _provision(settings: object) -> str:
    from authserver.app import build_services
    from tests.conftest import fast_passwords

    services = build_services(settings, passwords=fast_passwords())  # type: ignore[arg-type]
    try:
        _, secret = await services.clients.create(
            client_id="cluster-app", name="Cluster app", client_type="confidential", redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token", "client_credentials"],
            scopes=["openid", "profile", "read:levels"], first_party=True,
        )
        await services.accounts.create(username="ana", password_hash=await services.passwords.hash(PASSWORD), roles=["free_user"])
        assert secret is not None
        return secret
    finally:
        await services.cache.close()
        await services.engine.dispose()


async def test_instances_started_together_create_one_key_per_algorithm_and_serve_one_jwks(
    cluster: tuple[list[ServerProcess], str, str],
) -> None:
    servers, url, _ = cluster
    async with httpx.AsyncClient() as http:
        bodies = [(await http.get(f"{s.url}/jwks")).content for s in servers]
        discovery = [(await http.get(f"{s.url}/.well-known/openid-configuration")).content for s in servers]
    assert bodies[0] == bodies[1] == bodies[2]
    assert discovery[0] == discovery[1] == discovery[2]
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            counts = dict(
                (await connection.execute(
                    select(SigningKey.alg, func.count()).where(SigningKey.state == "active").group_by(SigningKey.alg)
                )).all()
            )
    finally:
        await engine.dispose()
    assert counts == {"ES256": 1, "RS256": 1}


async def _code_flow_across(servers: list[ServerProcess], http: httpx.AsyncClient) -> tuple[str, str]:
    """/authorize on A → login page on B → login POST on C → resume on A; returns (code, verifier)."""
    a, b, c = servers
    http.cookies.clear()  # a new browser: sign in every time
    verifier, challenge = pkce_pair()
    start = await http.get(f"{a.url}/authorize", params={
        "response_type": "code", "client_id": "cluster-app", "redirect_uri": REDIRECT_URI, "scope": "openid read:levels",
        "state": "st", "code_challenge": challenge, "code_challenge_method": "S256",
    })
    assert start.status_code == 303, start.text
    page = await http.get(f"{b.url}{start.headers['location']}")
    assert page.status_code == 200
    login = await http.post(f"{c.url}/login", data={
        "i": form_field(page.text, "i"), "csrf": form_field(page.text, "csrf"), "username": "ana", "password": PASSWORD,
    })
    assert login.status_code == 303, login.text
    back = await http.get(f"{a.url}{login.headers['location']}")
    assert back.status_code == 303 and back.headers["location"].startswith(REDIRECT_URI), back.text
    params = query_of(back.headers["location"])
    assert params["iss"] == ISSUER and params["state"] == "st"
    return params["code"], verifier


async def test_a_flow_split_across_instances_completes_and_codes_are_single_use_everywhere(
    cluster: tuple[list[ServerProcess], str, str],
) -> None:
    servers, _, secret = cluster
    async with httpx.AsyncClient() as http:
        code, verifier = await _code_flow_across(servers, http)
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier}
        results = await asyncio.gather(*(
            http.post(f"{s.url}/token", data=form, auth=("cluster-app", secret)) for s in servers
        ))
        assert sorted(r.status_code for r in results) == [200, 400, 400]
        tokens = next(r for r in results if r.status_code == 200).json()
        # Pinned (SPEC.md R-08): concurrent duplicates count as reuse, so the winner's grant is revoked too.
        refreshed = await http.post(
            f"{servers[1].url}/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            auth=("cluster-app", secret),
        )
        assert refreshed.status_code == 400

        code, verifier = await _code_flow_across(servers, http)
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier}
        first = await http.post(f"{servers[1].url}/token", data=form, auth=("cluster-app", secret))
        assert first.status_code == 200
        refreshed = await http.post(
            f"{servers[2].url}/token", data={"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"]},
            auth=("cluster-app", secret),
        )
        assert refreshed.status_code == 200, refreshed.text


async def test_a_killed_instance_leaves_no_partial_state(cluster: tuple[list[ServerProcess], str, str]) -> None:
    """R-13: SIGKILL one instance while refresh chains rotate on it; every family keeps exactly one live token."""
    servers, url, secret = cluster
    victim, survivor = servers[2], servers[0]
    async with httpx.AsyncClient(timeout=10) as http:
        chains = []
        for _ in range(4):
            code, verifier = await _code_flow_across(servers, http)
            response = await http.post(f"{survivor.url}/token", data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier,
            }, auth=("cluster-app", secret))
            chains.append(response.json()["refresh_token"])

        async def rotate_forever(index: int) -> None:
            while True:
                try:
                    r = await http.post(f"{victim.url}/token", data={
                        "grant_type": "refresh_token", "refresh_token": chains[index]}, auth=("cluster-app", secret))
                except httpx.HTTPError:
                    return
                if r.status_code != 200:
                    return
                chains[index] = r.json()["refresh_token"]

        tasks = [asyncio.create_task(rotate_forever(i)) for i in range(len(chains))]
        await asyncio.sleep(0.5)
        victim.kill()
        await asyncio.gather(*tasks)

    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            live = (await connection.execute(
                select(RefreshToken.grant_id, func.count())
                .where(RefreshToken.consumed_at.is_(None), RefreshToken.revoked_at.is_(None))
                .group_by(RefreshToken.grant_id)
            )).all()
    finally:
        await engine.dispose()
    assert live and all(count == 1 for _, count in live), live

    async with httpx.AsyncClient(timeout=10) as http:
        # Every chain had a request in flight at the kill: if the commit happened but the response was lost, the
        # client holds a consumed token and must sign in again (docs/reliability.md). Either way, the next
        # request on a surviving instance succeeds: a new sign-in, redemption and refresh.
        code, verifier = await _code_flow_across([survivor, survivor, survivor], http)
        redeemed = await http.post(f"{survivor.url}/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier,
        }, auth=("cluster-app", secret))
        assert redeemed.status_code == 200, redeemed.text
        refreshed = await http.post(f"{survivor.url}/token", data={
            "grant_type": "refresh_token", "refresh_token": redeemed.json()["refresh_token"]}, auth=("cluster-app", secret))
        assert refreshed.status_code == 200, refreshed.text
    victim.start()
    await victim.wait_ready()
