"""SPEC.md R-12 and R-13: three server processes behind one issuer, sharing PostgreSQL and Redis.

Requests are spread across the instances as a round-robin load balancer without stickiness would. What one
instance decides (a revocation, a rate-limit count, a client-authentication lock, a consumed code or refresh
token) holds on the others at once. Key rotation across processes is in tests/keys/test_two_instances.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from authserver.admin.service import Actor, AdminService
from authserver.app import build_services
from authserver.services import Services
from authserver.settings import load_settings
from authserver.storage.sql.migrate import upgrade
from authserver.storage.sql.models import Grant, RefreshToken, SigningKey
from authserver.tokens.opaque import digest
from tests.conftest import REDIS_URL, TEST_RELAXED_LIMITS, create_pg_database, delete_redis_prefix, drop_pg_database, fast_passwords
from tests.support.factories import REDIRECT_URI, form_field, pkce_pair, query_of
from tests.support.servers import ServerProcess, cluster_settings_env, free_port, server_env

# The data API the cluster's tokens are for, and whose resource server introspects them (RFC 7662 §4).
API = "https://api.cmipro.example"
ISSUER = "http://127.0.0.1:9"  # the load balancer's address: the same issuer on every instance
PASSWORD = "correct horse battery staple"
# Rounds of each cross-instance race; a soak run sets e.g. AUTHSERVER_RACE_ROUNDS=300.
ROUNDS = int(os.environ.get("AUTHSERVER_RACE_ROUNDS", "20"))


@dataclass
class Cluster:
    servers: list[ServerProcess]
    url: str
    env: dict[str, str]  # the settings every instance runs with
    secret: str = ""  # of the confidential client "cluster-app"
    introspector_secret: str = ""  # of "cluster-api", a resource server allowed to introspect

    @contextlib.asynccontextmanager
    async def services(self) -> AsyncIterator[Services]:
        """The stores on the cluster's database and Redis, as the CLI would open them (for provisioning)."""
        services = build_services(load_settings(self.env), passwords=fast_passwords())
        try:
            yield services
        finally:
            await services.cache.close()
            await services.limiter.close()
            await services.engine.dispose()


@pytest.fixture(scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    tmp = tmp_path_factory.mktemp("cluster")
    name = await create_pg_database()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    await asyncio.to_thread(upgrade, url)
    prefix = f"authserver-cluster-{secrets.token_hex(4)}:"
    settings_env = cluster_settings_env(issuer=ISSUER, database_url=url, redis_url=REDIS_URL, key_prefix=prefix)
    # Every flow comes from one address: per-IP limits relaxed as in the rest of the suite, except the
    # client-authentication lock per (client, IP), which keeps its shipped default (tested below).
    settings_env.update({f"AUTHSERVER_ABUSE__{n.upper()}": "1000000" for n in TEST_RELAXED_LIMITS if n != "client_failures"})
    # Strict refresh rotation (no grace period): the races below pin what reuse does across processes. The
    # grace period across instances: tests/reliability/test_refresh_grace_instances.py.
    settings_env["AUTHSERVER_TOKENS__REFRESH_TOKEN_GRACE_PERIOD"] = "0"
    servers = [ServerProcess(free_port(), server_env(settings_env), tmp / f"server{i}.log") for i in range(3)]
    for server in servers:  # all at once: first-start key creation must not race
        server.start()
    try:
        await asyncio.gather(*(server.wait_ready() for server in servers))
        cluster = Cluster(servers, url, settings_env)
        await _provision(cluster)
        yield cluster
    finally:
        for server in servers:
            server.stop()
        await drop_pg_database(name)
        await delete_redis_prefix(prefix)


async def _provision(cluster: Cluster) -> None:
    async with cluster.services() as services:
        _, secret = await services.clients.create(
            client_id="cluster-app", name="Cluster app", client_type="confidential", redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token", "client_credentials"],
            scopes=["openid", "profile", "read:levels"], audience=[API], first_party=True,
        )
        await services.accounts.create(username="ana", password_hash=await services.passwords.hash(PASSWORD), roles=["free_user"])
        _, introspector = await services.clients.create(
            client_id="cluster-api", name="Cluster API", client_type="confidential", redirect_uris=[],
            grant_types=[], scopes=[], audience=[API], can_introspect=True,
        )
        assert secret is not None and introspector is not None
        cluster.secret, cluster.introspector_secret = secret, introspector


async def test_instances_started_together_create_one_key_per_algorithm_and_serve_one_jwks(
    cluster: Cluster,
) -> None:
    servers, url = cluster.servers, cluster.url
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


async def _authorize(http: httpx.AsyncClient, server: ServerProcess) -> tuple[str, httpx.Response]:
    verifier, challenge = pkce_pair()
    response = await http.get(f"{server.url}/authorize", params={
        "response_type": "code", "client_id": "cluster-app", "redirect_uri": REDIRECT_URI, "scope": "openid read:levels",
        "state": "st", "code_challenge": challenge, "code_challenge_method": "S256",
    })
    return verifier, response


async def _code_flow_across(servers: list[ServerProcess], http: httpx.AsyncClient) -> tuple[str, str]:
    """/authorize on A → login page on B → login POST on C → resume on A; returns (code, verifier)."""
    a, b, c = servers
    http.cookies.clear()  # a new browser: sign in every time
    verifier, start = await _authorize(http, a)
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
    cluster: Cluster,
) -> None:
    servers, secret = cluster.servers, cluster.secret
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


async def _code_signed_in(http: httpx.AsyncClient, server: ServerProcess) -> tuple[str, str]:
    """A code from a browser that is already signed in (its session is in PostgreSQL: any instance)."""
    verifier, response = await _authorize(http, server)
    assert response.status_code == 303 and response.headers["location"].startswith(REDIRECT_URI), response.text
    return query_of(response.headers["location"])["code"], verifier


def _redeem_form(code: str, verifier: str) -> dict[str, str]:
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier}


def _refresh_form(token: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": token}


async def _introspect(http: httpx.AsyncClient, cluster: Cluster, server: ServerProcess, token: str) -> bool:
    response = await http.post(f"{server.url}/introspect", data={"token": token}, auth=("cluster-api", cluster.introspector_secret))
    assert response.status_code == 200, response.text
    active: bool = response.json()["active"]
    return active


async def test_a_revocation_on_one_instance_holds_on_the_others_at_once(cluster: Cluster) -> None:
    """RFC 7009 on A; introspection and refresh on B and C right after the 200, with no wait."""
    (a, b, c), auth = cluster.servers, ("cluster-app", cluster.secret)
    async with httpx.AsyncClient(timeout=10) as http:
        code, verifier = await _code_flow_across(cluster.servers, http)
        tokens = (await http.post(f"{a.url}/token", data=_redeem_form(code, verifier), auth=auth)).json()
        assert [await _introspect(http, cluster, s, tokens["access_token"]) for s in (b, c)] == [True, True]

        # A refresh token: its whole family, access tokens included.
        assert (await http.post(f"{a.url}/revoke", data={"token": tokens["refresh_token"]}, auth=auth)).status_code == 200
        assert [await _introspect(http, cluster, s, tokens["access_token"]) for s in (b, c)] == [False, False]
        for server in (b, c):
            refreshed = await http.post(f"{server.url}/token", data=_refresh_form(tokens["refresh_token"]), auth=auth)
            assert refreshed.status_code == 400 and refreshed.json()["error"] == "invalid_grant", refreshed.text

        # An access token: that token only; its family keeps working on every instance (pinned).
        code, verifier = await _code_signed_in(http, b)
        tokens = (await http.post(f"{b.url}/token", data=_redeem_form(code, verifier), auth=auth)).json()
        assert await _introspect(http, cluster, a, tokens["access_token"])
        assert (await http.post(f"{c.url}/revoke", data={"token": tokens["access_token"]}, auth=auth)).status_code == 200
        assert [await _introspect(http, cluster, s, tokens["access_token"]) for s in (a, b)] == [False, False]
        refreshed = await http.post(f"{a.url}/token", data=_refresh_form(tokens["refresh_token"]), auth=auth)
        assert refreshed.status_code == 200, refreshed.text
        assert await _introspect(http, cluster, b, refreshed.json()["access_token"])


async def test_rate_limits_and_client_locks_count_across_instances(cluster: Cluster) -> None:
    """The per-client token limit (Redis) and the client-authentication lock (PostgreSQL) are global:
    requests spread round-robin over three instances hit them exactly where one instance would."""
    servers = cluster.servers
    limit = 6
    async with cluster.services() as services:
        created = await AdminService(services).create_client({
            "client_id": f"limited-{secrets.token_hex(3)}", "client_type": "confidential", "name": "Limited",
            "grant_types": ["client_credentials"], "scopes": ["read:levels"], "rate_limit_per_minute": limit,
        }, actor=Actor(via="cli"))
        threshold = services.settings.abuse.client_failures
    client_id, secret = created["client_id"], created["client_secret"]
    async with httpx.AsyncClient(timeout=10) as http:
        statuses = [
            (await http.post(f"{servers[n % 3].url}/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))).status_code
            for n in range(3 * limit)
        ]
        # Counted per instance, every one of the 18 would pass (6 per instance).
        assert statuses == [200] * limit + [429] * (2 * limit), statuses

        # Failed client authentications from one address, spread over the instances (a few on each).
        address = {"X-Forwarded-For": f"203.0.113.{secrets.randbelow(250) + 1}"}
        wrong = [
            (await http.post(f"{servers[n % 3].url}/token", data={"grant_type": "client_credentials"},
                             auth=("cluster-app", "cs_wrong"), headers=address)).status_code
            for n in range(threshold)
        ]
        assert wrong == [401] * threshold, wrong
        # Locked on every instance, even with the right secret: at once where the lock was set, within
        # abuse.client_lock_view_seconds (1 s) elsewhere (each instance's copy of the locks table).
        deadline = asyncio.get_running_loop().time() + 1.0 + 2.0
        for server in servers:
            while True:
                locked = await http.post(f"{server.url}/token", data={"grant_type": "client_credentials"},
                                         auth=("cluster-app", cluster.secret), headers=address)
                if locked.status_code == 429 or asyncio.get_running_loop().time() > deadline:
                    break
                assert locked.status_code == 200, locked.text
                await asyncio.sleep(0.1)
            assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0, locked.text
        # The lock is per (client, address): the same client from elsewhere is not affected.
        elsewhere = await http.post(f"{servers[0].url}/token", data={"grant_type": "client_credentials"}, auth=("cluster-app", cluster.secret))
        assert elsewhere.status_code == 200, elsewhere.text


async def _family_rows(engine: AsyncEngine, refresh_token: str) -> tuple[int, int, bool]:
    """(refresh-token rows, live ones, grant revoked) for the family of ``refresh_token``."""
    async with engine.connect() as connection:
        grant_id = (await connection.execute(
            select(RefreshToken.grant_id).where(RefreshToken.token_digest == digest(refresh_token))
        )).scalar_one()
        rows, live = (await connection.execute(
            select(func.count(), func.count().filter(RefreshToken.consumed_at.is_(None), RefreshToken.revoked_at.is_(None)))
            .where(RefreshToken.grant_id == grant_id)
        )).one()
        revoked = (await connection.execute(select(Grant.revoked_at).where(Grant.grant_id == grant_id))).scalar_one()
    return rows, live, revoked is not None


async def _no_forked_family(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        live = (await connection.execute(
            select(RefreshToken.grant_id, func.count())
            .where(RefreshToken.consumed_at.is_(None), RefreshToken.revoked_at.is_(None))
            .group_by(RefreshToken.grant_id).having(func.count() > 1)
        )).all()
    assert live == [], f"families with two live refresh tokens: {live}"


@pytest.fixture
async def engine(cluster: Cluster) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(cluster.url)
    yield engine
    await engine.dispose()


async def _all_at_once(http: httpx.AsyncClient, cluster: Cluster, form: dict[str, str]) -> list[httpx.Response]:
    """The same token request on the three instances at the same time."""
    auth = ("cluster-app", cluster.secret)
    return list(await asyncio.gather(*(http.post(f"{s.url}/token", data=form, auth=auth) for s in cluster.servers)))


def _one_winner(responses: list[httpx.Response]) -> httpx.Response:
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 400, 400], statuses
    assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code == 400)
    return next(r for r in responses if r.status_code == 200)


async def test_parallel_code_redemption_on_three_instances(cluster: Cluster, engine: AsyncEngine) -> None:
    """R-08 across processes: one 200 a round, and the duplicates (reuse) revoke the winner's family."""
    servers = cluster.servers
    async with httpx.AsyncClient(timeout=10) as http:
        await _code_flow_across(servers, http)  # signs the browser in; its first code is not needed
        for round_no in range(ROUNDS):
            code, verifier = await _code_signed_in(http, servers[round_no % 3])
            tokens = _one_winner(await _all_at_once(http, cluster, _redeem_form(code, verifier))).json()
            # The grant and its first refresh token exist once; the family is revoked.
            assert await _family_rows(engine, tokens["refresh_token"]) == (1, 0, True)
            assert not await _introspect(http, cluster, servers[(round_no + 1) % 3], tokens["access_token"])
    await _no_forked_family(engine)


async def test_parallel_refresh_on_three_instances(cluster: Cluster, engine: AsyncEngine) -> None:
    """R-07 across processes: one rotation wins (one successor row), the others are reuse and revoke the family."""
    servers, auth = cluster.servers, ("cluster-app", cluster.secret)
    async with httpx.AsyncClient(timeout=10) as http:
        await _code_flow_across(servers, http)
        for round_no in range(ROUNDS):
            code, verifier = await _code_signed_in(http, servers[round_no % 3])
            redeemed = await http.post(f"{servers[(round_no + 1) % 3].url}/token", data=_redeem_form(code, verifier), auth=auth)
            assert redeemed.status_code == 200, redeemed.text
            first = redeemed.json()["refresh_token"]
            winner = _one_winner(await _all_at_once(http, cluster, _refresh_form(first))).json()
            # Exactly one successor (two rows in the family), none of them live, the grant revoked.
            assert await _family_rows(engine, first) == (2, 0, True)
            again = await http.post(f"{servers[round_no % 3].url}/token", data=_refresh_form(winner["refresh_token"]), auth=auth)
            assert again.status_code == 400, again.text
            assert not await _introspect(http, cluster, servers[(round_no + 2) % 3], winner["access_token"])
    await _no_forked_family(engine)



async def test_a_killed_instance_leaves_no_partial_state(cluster: Cluster) -> None:
    """R-13: SIGKILL one instance while refresh chains rotate on it; every family keeps exactly one live token."""
    servers, url, secret = cluster.servers, cluster.url, cluster.secret
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
