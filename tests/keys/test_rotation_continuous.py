"""SPEC R-10: issue and verify continuously through several rotations; not one valid token may fail.

Two server instances share one database and one injectable clock. Each runs its maintenance tick (the
schedule + reload) every ``reload_interval`` at a different phase, so one of them always lags behind the
rotation. Verifiers cache the JWKS for exactly the announced ``max-age`` and never refetch on an unknown
kid (the strictest verifier there is), each having started at a different moment; one is a plain PyJWT
verifier. Every token is verified by every verifier when new and near its expiry; every published
JWKS is checked at every step to hold the kid of every unexpired token.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable

import httpx
import jwt as pyjwt

from authserver.clock import FrozenClock
from authserver.settings import Settings
from cmipro_verify import TokenError, Verifier
from tests.keys.conftest import client_token, epoch, running
from tests.support.factories import make_client

STEP = 120  # simulated seconds between steps
MAX_AGE = 300
RELOAD = 600
ROTATION = 3600
ALGS = ("ES256", "RS256", "EdDSA")


class PlainPyJWTVerifier:
    """What a resource server writes with a plain JWT library: fetch, cache for max-age, no refetch."""

    def __init__(self, http: httpx.AsyncClient, now: Callable[[], float]) -> None:
        self._http = http
        self._now = now
        self._keys: dict[str, pyjwt.PyJWK] = {}
        self._until = float("-inf")

    async def verify(self, token: str) -> None:
        if self._now() >= self._until:
            response = await self._http.get("/jwks")
            max_age = int(response.headers["cache-control"].split("max-age=")[1].split(",")[0])
            self._keys = {k.key_id: k for k in pyjwt.PyJWKSet.from_dict(response.json()).keys if k.key_id}
            self._until = self._now() + max_age
        header = pyjwt.get_unverified_header(token)
        key = self._keys.get(header["kid"])
        if key is None:
            raise LookupError(f"unknown kid {header['kid']}")
        pyjwt.decode(
            token, key.key, algorithms=[key.algorithm_name], audience="https://api.cmipro.example",
            issuer="http://testserver", options={"verify_iat": False}, leeway=60,
        )


async def test_zero_failed_verifications_through_three_rotations(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(
        AUTHSERVER_TOKENS__JWKS_MAX_AGE=str(MAX_AGE),
        AUTHSERVER_TOKENS__ACCESS_TOKEN_TTL="900",
        AUTHSERVER_KEYS__ALGORITHMS=",".join(ALGS),
        AUTHSERVER_KEYS__RELOAD_INTERVAL=str(RELOAD),
        AUTHSERVER_KEYS__PUBLISH_AHEAD=str(MAX_AGE + RELOAD),
        AUTHSERVER_KEYS__ROTATION_INTERVAL=str(ROTATION),
        AUTHSERVER_KEYS__RETIRE_LEEWAY="60",
    )
    clock = FrozenClock()
    now = epoch(clock)
    async with running(settings, clock) as (_, a, http_a), running(settings, clock) as (_, b, http_b):
        instances = [(a, http_a), (b, http_b)]
        clients = {alg: await make_client(a, grant_types=["client_credentials"], signing_alg=alg) for alg in ALGS}
        verifiers: list[Callable[[str], object]] = []
        live: list[tuple[str, float]] = []
        kids_used: dict[str, set[str]] = defaultdict(set)
        failures: list[str] = []
        verified = 0
        steps = (3 * ROTATION + MAX_AGE + RELOAD + 2 * STEP) // STEP + ROTATION // STEP
        for step in range(steps):
            clock.advance(STEP)
            elapsed = step * STEP
            # Maintenance ticks every RELOAD seconds: instance a at phase 0, instance b 360 s later.
            if elapsed % RELOAD == 0:
                await a.key_manager.tick()
            if elapsed % RELOAD == 3 * STEP:
                await b.key_manager.tick()
            # A new verifier starts every few steps (cold start at a different phase of the cache).
            if step < 5:
                source = instances[step % 2][1]
                verifier = Verifier(
                    issuer="http://testserver", audience="https://api.cmipro.example", jwks_url="http://testserver/jwks",
                    clock=now, refetch_cooldown=float("inf"), async_http_client=source,
                )
                verifiers.append(verifier.verify_async)
            if step == 5:
                verifiers.append(PlainPyJWTVerifier(http_b, now).verify)
            # Issue one token per algorithm, alternating instances.
            for index, alg in enumerate(ALGS):
                services, http = instances[(step + index) % 2]
                token = await client_token(http, clients[alg])
                header = pyjwt.get_unverified_header(token)
                assert header["alg"] == alg
                kids_used[alg].add(header["kid"])
                live.append((token, pyjwt.decode(token, options={"verify_signature": False})["exp"]))
            # Every published JWKS holds the kid of every unexpired token.
            live = [(t, exp) for t, exp in live if exp > now()]
            for services, _ in instances:
                published = {k["kid"] for k in json.loads(services.keys.jwks_bytes)["keys"]}
                for token, _ in live:
                    kid = pyjwt.get_unverified_header(token)["kid"]
                    if kid not in published:
                        failures.append(f"step {step}: kid {kid} of a live token missing from a JWKS")
            # Verifiers check each token when it is new and again near the end of its life (the moments
            # a key change could break it); JWKS membership above covers every live token at every step.
            due = [t for t, exp in live if exp - now() > 900 - STEP or exp - now() <= 2 * STEP]
            for verify in verifiers:
                for token in due:
                    try:
                        await verify(token)
                        verified += 1
                    except (TokenError, LookupError, pyjwt.PyJWTError) as error:
                        failures.append(f"step {step}: {type(error).__name__}: {error}")
        assert failures[:5] == [] and len(failures) == 0
        # At least three rotations per algorithm happened while we watched (four signing keys seen).
        assert {alg: len(kids) >= 4 for alg, kids in kids_used.items()} == {alg: True for alg in ALGS}
        assert verified > 2000
