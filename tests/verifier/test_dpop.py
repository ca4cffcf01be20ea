"""cmipro_verify and DPoP-bound tokens (RFC 9449 §7): a data API refuses a stolen bound token.

Tokens come from a live authorization server; proofs from joserfc/PyJWT (tests/support/dpop.py).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cmipro_verify import InvalidDpopProof, InvalidToken, MemoryReplayCache, Verifier
from cmipro_verify.starlette import BearerAuthMiddleware, claims_of, requires
from tests.support.dpop import Prover
from tests.verifier.conftest import AUDIENCE, LiveServer

API = "https://api.cmipro.example"
LEVELS = f"{API}/levels"


async def bound_token(live: LiveServer, prover: Prover) -> str:
    client = await live.service_client()
    async with httpx.AsyncClient(base_url=live.url) as http:
        response = await http.post(
            "/token", data={"grant_type": "client_credentials", "scope": "read:levels"},
            auth=(client.client_id, client.secret or ""), headers={"DPoP": prover.proof("POST", f"{live.url}/token")},
        )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    return str(response.json()["access_token"])


def data_api(verifier: Verifier) -> Starlette:
    @requires("read:levels")
    async def levels(request: Request) -> Response:
        return JSONResponse({"for": claims_of(request).subject})

    return Starlette(
        routes=[Route("/levels", levels)],
        middleware=[Middleware(BearerAuthMiddleware, verifier=verifier, base_url=API)],
    )


async def test_the_data_api_accepts_a_bound_token_only_with_a_proof_of_its_key(live: LiveServer) -> None:
    verifier = Verifier(issuer=live.issuer, audience=AUDIENCE)
    prover = Prover()
    token = await bound_token(live, prover)
    thief = Prover()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=data_api(verifier)), base_url="http://internal:8080") as api:
        ok = await api.get("/levels", headers={"Authorization": f"DPoP {token}", "DPoP": prover.proof("GET", LEVELS, access_token=token)})
        assert ok.status_code == 200, ok.text
        pyjwt_made = prover.pyjwt_proof("GET", LEVELS, access_token=token)
        assert (await api.get("/levels", headers={"Authorization": f"DPoP {token}", "DPoP": pyjwt_made})).status_code == 200

        refused: dict[str, dict[str, str]] = {
            "as Bearer": {"Authorization": f"Bearer {token}"},
            "no proof": {"Authorization": f"DPoP {token}"},
            "thief's key": {"Authorization": f"DPoP {token}", "DPoP": thief.proof("GET", LEVELS, access_token=token)},
            "ath mismatch": {"Authorization": f"DPoP {token}", "DPoP": prover.proof("GET", LEVELS, access_token="x")},
            "wrong htm": {"Authorization": f"DPoP {token}", "DPoP": prover.proof("POST", LEVELS, access_token=token)},
            "wrong htu": {"Authorization": f"DPoP {token}", "DPoP": prover.proof("GET", f"{API}/other", access_token=token)},
            "Host-header htu": {"Authorization": f"DPoP {token}", "DPoP": prover.proof("GET", "http://internal:8080/levels", access_token=token)},
            "replayed": {"Authorization": f"DPoP {token}", "DPoP": pyjwt_made},
            "wrong typ": {"Authorization": f"DPoP {token}", "DPoP": prover.proof("GET", LEVELS, access_token=token, header={"typ": "JWT"})},
            "too old": {"Authorization": f"DPoP {token}", "DPoP": prover.proof("GET", LEVELS, access_token=token, iat=1)},
        }
        for case, headers in refused.items():
            response = await api.get("/levels", headers=headers)
            assert response.status_code == 401, (case, response.text)
            assert response.headers["www-authenticate"].startswith('DPoP algs="ES256'), case
            assert response.json()["error"] in ("invalid_token", "invalid_dpop_proof"), case
    await verifier.aclose()


async def test_an_unbound_token_with_the_dpop_scheme_and_the_library_api(live: LiveServer) -> None:
    verifier = Verifier(issuer=live.issuer, audience=AUDIENCE)
    plain = await live.token(await live.service_client())
    prover = Prover()
    with pytest.raises(InvalidToken):
        await verifier.verify_request_async(f"DPoP {plain}", dpop=prover.proof("GET", LEVELS, access_token=plain), method="GET", url=LEVELS)
    claims = await verifier.verify_request_async(f"Bearer {plain}", dpop=None, method="GET", url=LEVELS)
    assert claims.client_id
    token = await bound_token(live, prover)
    # verify(token) alone cannot see the proof: a bound token is refused there.
    with pytest.raises(InvalidToken, match="DPoP-bound"):
        await verifier.verify_async(token)
    two = [prover.proof("GET", LEVELS, access_token=token), prover.proof("GET", LEVELS, access_token=token)]
    with pytest.raises(InvalidDpopProof, match="more than one"):
        await verifier.verify_request_async(f"DPoP {token}", dpop=two, method="GET", url=LEVELS)
    claims = verifier.verify_request(f"DPoP {token}", dpop=two[0], method="GET", url=LEVELS)
    assert claims["cnf"] == {"jkt": prover.jkt}
    await verifier.aclose()


async def test_a_shared_replay_cache_refuses_a_proof_seen_by_another_instance(live: LiveServer) -> None:
    class Shared:
        """Stands in for a shared store (Redis SET NX EX) between two API instances."""

        def __init__(self) -> None:
            self.inner = MemoryReplayCache()
            self.calls: list[Any] = []

        def add(self, key: str, ttl: float) -> bool:
            self.calls.append((key, ttl))
            return self.inner.add(key, ttl)

    shared = Shared()
    one = Verifier(issuer=live.issuer, audience=AUDIENCE, dpop_replay_cache=shared)
    two = Verifier(issuer=live.issuer, audience=AUDIENCE, dpop_replay_cache=shared)
    prover = Prover()
    token = await bound_token(live, prover)
    proof = prover.proof("GET", LEVELS, access_token=token)
    await one.verify_request_async(f"DPoP {token}", dpop=proof, method="GET", url=LEVELS)
    with pytest.raises(InvalidDpopProof, match="already used"):
        await two.verify_request_async(f"DPoP {token}", dpop=proof, method="GET", url=LEVELS)
    assert len(shared.calls) == 2
    await one.aclose()
    await two.aclose()


def test_memory_replay_cache_forgets_after_the_ttl_and_stays_bounded() -> None:
    now = [0.0]
    cache = MemoryReplayCache(max_entries=2, clock=lambda: now[0])
    assert cache.add("a", 10) and not cache.add("a", 10)
    now[0] = 11
    assert cache.add("a", 10)
    assert cache.add("b", 10) and cache.add("c", 10)
    assert cache.add("a", 10)  # the oldest entry was dropped to stay within max_entries
