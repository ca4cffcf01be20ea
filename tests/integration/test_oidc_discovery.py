"""OpenID Connect Discovery 1.0 §3-4 and RFC 8414: complete, and truthful about what is implemented."""

from __future__ import annotations

import httpx
import pytest

from authserver.services import Services
from tests.conftest import ISSUER
from tests.support.factories import make_client

PATHS = ["/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"]


@pytest.mark.parametrize("path", PATHS)
async def test_metadata_document_is_complete(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    meta = response.json()
    # OIDC Discovery §4.3 / RFC 8414 §3.3: issuer identical to the URL prefix the document was fetched from
    assert meta["issuer"] == ISSUER
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert meta[name].startswith(ISSUER + "/"), name
    assert meta["response_types_supported"] == ["code"]
    assert meta["response_modes_supported"] == ["query"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert sorted(meta["grant_types_supported"]) == ["authorization_code", "client_credentials", "refresh_token"]
    assert sorted(meta["token_endpoint_auth_methods_supported"]) == [
        "client_secret_basic", "client_secret_jwt", "client_secret_post", "none", "private_key_jwt",
    ]
    assert meta["subject_types_supported"] == ["public"]
    assert "RS256" in meta["id_token_signing_alg_values_supported"]
    assert "openid" in meta["scopes_supported"]
    assert len(meta["scopes_supported"]) == len(set(meta["scopes_supported"])), meta["scopes_supported"]
    assert meta["request_parameter_supported"] is False
    assert meta["request_uri_parameter_supported"] is False
    assert meta["claims_parameter_supported"] is False
    assert set(meta["prompt_values_supported"]) == {"none", "login", "consent"}


async def test_both_documents_are_identical(http: httpx.AsyncClient) -> None:
    first, second = [(await http.get(p)).json() for p in PATHS]
    assert first == second


async def test_every_advertised_endpoint_exists(http: httpx.AsyncClient) -> None:
    meta = (await http.get(PATHS[0])).json()
    assert (await http.get(meta["jwks_uri"].removeprefix(ISSUER))).status_code == 200
    # token: wrong method, but the route is there (JSON 405, not 404)
    assert (await http.get(meta["token_endpoint"].removeprefix(ISSUER))).status_code == 405
    assert (await http.get(meta["userinfo_endpoint"].removeprefix(ISSUER))).status_code == 401
    assert (await http.get(meta["authorization_endpoint"].removeprefix(ISSUER))).status_code == 400


async def test_every_advertised_signing_alg_has_a_published_key(http: httpx.AsyncClient, services: Services) -> None:
    """Truthfulness: a client may register any advertised alg, so each must be backed by a key that signs."""
    meta = (await http.get(PATHS[0])).json()
    published = {key["alg"] for key in (await http.get("/jwks")).json()["keys"]}
    assert set(meta["id_token_signing_alg_values_supported"]) <= published
    for alg in meta["id_token_signing_alg_values_supported"]:
        client = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"], signing_alg=alg)
        response = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))
        assert response.status_code == 200, (alg, response.text)


async def test_discovery_is_cacheable_and_public(http: httpx.AsyncClient) -> None:
    response = await http.get(PATHS[0])
    assert "max-age" in response.headers["cache-control"]
    assert response.headers["access-control-allow-origin"] == "*"
