"""JWKS (RFC 7517): public halves only, distinct kids, cacheable with an ETag (RFC 9111, RFC 9110 §13.1.2)."""

from __future__ import annotations

import httpx
import jwt as pyjwt

from authserver.services import Services
from tests.support.factories import authorize, make_client, make_user, redeem

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}


async def test_jwks_has_no_private_or_symmetric_material_and_distinct_kids(http: httpx.AsyncClient) -> None:
    response = await http.get("/jwks")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/jwk-set+json")
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        assert not PRIVATE_MEMBERS & set(key), key
        assert key["kty"] in {"EC", "RSA"}
        assert key["kid"] and key["use"] == "sig" and key["alg"] in {"ES256", "RS256"}
    kids = [key["kid"] for key in keys]
    assert len(kids) == len(set(kids))


async def test_jwks_cache_headers_and_conditional_get(http: httpx.AsyncClient, services: Services) -> None:
    response = await http.get("/jwks")
    assert response.headers["cache-control"] == f"public, max-age={services.settings.tokens.jwks_max_age}"
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
    again = await http.get("/jwks", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    for header in (f"W/{etag}", f'"other", {etag}', "*"):  # RFC 9110 §13.1.2: lists, weak comparison
        assert (await http.get("/jwks", headers={"If-None-Match": header})).status_code == 304, header
    other = await http.get("/jwks", headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.json() == response.json()


async def test_every_token_names_a_published_kid(http: httpx.AsyncClient, services: Services) -> None:
    kids = {key["kid"] for key in (await http.get("/jwks")).json()["keys"]}
    client = await make_client(services)
    user = await make_user(services)
    params, verifier = await authorize(http, client, user)
    body = (await redeem(http, client, params["code"], verifier)).json()
    for token in (body["access_token"], body["id_token"]):
        assert pyjwt.get_unverified_header(token)["kid"] in kids
    machine = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))
    assert pyjwt.get_unverified_header(machine.json()["access_token"])["kid"] in kids


async def test_machine_endpoints_called_directly_still_refuse_wrong_methods_and_carry_edge_headers(http: httpx.AsyncClient) -> None:
    """/jwks and discovery are dispatched by the edge middleware without the route walk: a wrong method
    still reaches the router (405 with Allow), HEAD still works, and the edge's headers are on every answer."""
    refused = await http.post("/jwks")
    assert refused.status_code == 405 and "GET" in refused.headers["allow"]
    head = await http.head("/.well-known/openid-configuration")
    assert head.status_code == 200 and head.content == b""
    for response in (refused, head, await http.get("/jwks")):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-request-id"]
