"""RFC 6749 §4.4 client credentials, verified by PyJWT against our JWKS."""

from __future__ import annotations

import httpx
import jwt as pyjwt

from authserver.services import Services
from tests.support.factories import make_client


async def fetch_jwks(http: httpx.AsyncClient) -> pyjwt.PyJWKSet:
    response = await http.get("/jwks")
    assert response.status_code == 200
    return pyjwt.PyJWKSet.from_dict(response.json())


async def test_issues_a_jwt_access_token_that_verifies_against_jwks(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels", "read:alerts"])
    response = await http.post(
        "/token", data={"grant_type": "client_credentials", "scope": "read:levels"}, auth=(client.client_id, client.secret)
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "read:levels"
    assert "refresh_token" not in body
    header = pyjwt.get_unverified_header(body["access_token"])
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    keys = await fetch_jwks(http)
    claims = pyjwt.decode(
        body["access_token"], keys[header["kid"]].key, algorithms=["ES256"],
        audience="https://api.cmipro.example", issuer="http://testserver",
    )
    assert claims["sub"] == client.client_id
    assert claims["client_id"] == client.client_id
    assert claims["scope"] == "read:levels"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["jti"]


async def test_wrong_secret_with_basic_is_401_with_www_authenticate(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, grant_types=["client_credentials"])
    response = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, "nope"))
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic")


async def test_client_secret_post_works(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, grant_types=["client_credentials"], token_endpoint_auth_method="client_secret_post")
    response = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": client.client_id, "client_secret": client.secret},
    )
    assert response.status_code == 200, response.text


async def test_scope_outside_the_clients_allowance_is_invalid_scope(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"])
    response = await http.post(
        "/token", data={"grant_type": "client_credentials", "scope": "write:alerts"}, auth=(client.client_id, client.secret)
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"


async def test_client_without_the_grant_is_unauthorized_client(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, grant_types=["authorization_code"])
    response = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


async def test_resource_parameter_selects_the_audience(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, grant_types=["client_credentials"], audience=["https://a.example", "https://b.example"])
    ok = await http.post(
        "/token", data={"grant_type": "client_credentials", "resource": "https://b.example"}, auth=(client.client_id, client.secret)
    )
    assert pyjwt.decode(ok.json()["access_token"], options={"verify_signature": False})["aud"] == "https://b.example"
    bad = await http.post(
        "/token", data={"grant_type": "client_credentials", "resource": "https://evil.example"}, auth=(client.client_id, client.secret)
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_target"
