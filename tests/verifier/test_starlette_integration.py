"""A data API on Starlette protected by cmipro_verify.starlette, called with real tokens (RFC 6750)."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from cmipro_verify import Verifier
from cmipro_verify.starlette import BearerAuthMiddleware, claims_of, requires
from tests.support.factories import authorize, make_client, make_user, redeem
from tests.verifier.conftest import AUDIENCE, LiveServer


def data_api(verifier: Verifier) -> Starlette:
    """The few lines docs/verifying-tokens.md shows."""

    @requires("read:levels")
    async def levels(request: Request) -> Response:
        return JSONResponse({"station": "Chamelecon", "level_m": 3.2, "for": claims_of(request).subject})

    @requires("write:alerts", any_role=["premium_user"])
    async def alerts(request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[Route("/levels", levels), Route("/alerts", alerts, methods=["POST"]), Route("/health", health)],
        middleware=[Middleware(BearerAuthMiddleware, verifier=verifier, exempt_paths={"/health"})],
    )


async def test_data_api_accepts_valid_tokens_and_answers_rfc6750_errors(live: LiveServer) -> None:
    verifier = Verifier(issuer=live.issuer, audience=AUDIENCE)
    api = httpx.AsyncClient(transport=httpx.ASGITransport(app=data_api(verifier)), base_url="http://data-api")
    client = await live.service_client()
    async with api:
        ok = await api.get("/levels", headers={"Authorization": f"Bearer {await live.token(client, 'read:levels')}"})
        assert ok.status_code == 200 and ok.json()["for"] == client.client_id

        missing = await api.get("/levels")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith('Bearer error="invalid_token"')

        bad = await api.get("/levels", headers={"Authorization": "Bearer not.a.token"})
        assert bad.status_code == 401 and bad.json()["error"] == "invalid_token"

        scope = await api.get("/levels", headers={"Authorization": f"Bearer {await live.token(client, 'read:alerts')}"})
        assert scope.status_code == 403 and scope.json()["error"] == "insufficient_scope"
        assert 'scope="read:levels"' in scope.headers["www-authenticate"]

        assert (await api.get("/health")).status_code == 200
    await verifier.aclose()


async def test_roles_of_a_persons_token_gate_an_endpoint(live: LiveServer) -> None:
    verifier = Verifier(issuer=live.issuer, audience=AUDIENCE)
    premium = await make_user(live.services, roles=["premium_user"])
    plain = await make_user(live.services, roles=["free_user"])
    client = await make_client(live.services)
    tokens = {}
    for person in (premium, plain):
        async with httpx.AsyncClient(base_url=live.url) as browser:
            params, verifier_code = await authorize(browser, client, person, scope="openid write:alerts")
            response = await redeem(browser, client, params["code"], verifier_code)
            assert response.status_code == 200, response.text
            tokens[person.username] = response.json()["access_token"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=data_api(verifier)), base_url="http://data-api") as api:
        allowed = await api.post("/alerts", headers={"Authorization": f"Bearer {tokens[premium.username]}"})
        denied = await api.post("/alerts", headers={"Authorization": f"Bearer {tokens[plain.username]}"})
    assert allowed.status_code == 200
    assert denied.status_code == 403 and denied.json()["error"] == "insufficient_scope"
    claims = await verifier.verify_async(tokens[premium.username])
    assert claims.is_user and claims.roles == {"premium_user"} and claims.subject == premium.account_id
