"""Pushed authorization requests (RFC 9126): /par, single-use request_uri, required PAR, errors by channel."""

from __future__ import annotations

from pathlib import Path

import httpx

from authserver.clock import FrozenClock
from authserver.services import Services
from tests.support.apps import running_app
from tests.support.factories import (
    REDIRECT_URI,
    AppClient,
    Person,
    make_client,
    make_user,
    pkce_pair,
    query_of,
    sign_in,
)

PREFIX = "urn:ietf:params:oauth:request_uri:"


def auth_request(client: AppClient, challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code", "client_id": client.client_id, "redirect_uri": REDIRECT_URI, "scope": "openid read:levels",
        "code_challenge": challenge, "code_challenge_method": "S256", "state": "s-1", **extra,
    }


async def push(http: httpx.AsyncClient, client: AppClient, params: dict[str, str]) -> httpx.Response:
    assert client.secret
    return await http.post("/par", data=params, auth=(client.client_id, client.secret))


async def visit(http: httpx.AsyncClient, client_id: str, request_uri: str, user: Person | None, **extra: str) -> httpx.Response:
    """Open /authorize with the request_uri and sign in if asked; the last response (a redirect or a page)."""
    response = await http.get("/authorize", params={"client_id": client_id, "request_uri": request_uri, **extra})
    for _ in range(4):
        target = response.headers.get("location", "")
        if response.status_code not in (302, 303) or target.startswith(REDIRECT_URI):
            return response
        response = await (sign_in(http, target, user) if target.startswith("/login") and user else http.get(target))
    raise AssertionError("too many redirects")


def invalid_request_uri_page(response: httpx.Response) -> None:
    assert response.status_code == 400 and "location" not in response.headers
    assert "text/html" in response.headers["content-type"]
    assert "does not belong to this application" in response.text or "no pertenece a esta aplicación" in response.text


async def test_push_then_authorize_once(http: httpx.AsyncClient, services: Services) -> None:
    client, user = await make_client(services), await make_user(services)
    verifier, challenge = pkce_pair()
    pushed = await push(http, client, auth_request(client, challenge, nonce="n-1"))
    assert pushed.status_code == 201, pushed.text
    assert pushed.headers["cache-control"].startswith("no-store")
    body = pushed.json()
    assert body["request_uri"].startswith(PREFIX) and len(body["request_uri"]) > len(PREFIX) + 40
    assert body["expires_in"] == 60
    # Parameters on the URL besides client_id and request_uri are ignored: the pushed ones count.
    done = await visit(http, client.client_id, body["request_uri"], user, state="from-url", scope="openid write:alerts")
    callback = query_of(done.headers["location"])
    assert callback["state"] == "s-1" and "code" in callback
    token = await http.post("/token", data={"grant_type": "authorization_code", "code": callback["code"], "redirect_uri": REDIRECT_URI,
                                            "code_verifier": verifier}, auth=(client.client_id, client.secret or ""))
    assert token.status_code == 200 and token.json()["scope"] == "openid read:levels"
    # Single use.
    invalid_request_uri_page(await visit(http, client.client_id, body["request_uri"], user))


async def test_unknown_and_other_clients_request_uri(http: httpx.AsyncClient, services: Services) -> None:
    owner, other, user = await make_client(services), await make_client(services), await make_user(services)
    _, challenge = pkce_pair()
    request_uri = (await push(http, owner, auth_request(owner, challenge))).json()["request_uri"]
    invalid_request_uri_page(await visit(http, other.client_id, request_uri, user))
    invalid_request_uri_page(await visit(http, owner.client_id, PREFIX + "made-up", user))
    # A request object by reference is not supported: redirected once the redirect URI is known.
    by_reference = await http.get("/authorize", params={**auth_request(owner, challenge), "request_uri": "https://app.example/r.jwt"})
    assert query_of(by_reference.headers["location"])["error"] == "request_uri_not_supported"
    invalid_request_uri_page(await http.get("/authorize", params={"request_uri": request_uri}))  # no client_id
    # Another client's attempt did not consume it: the owner still can use it.
    done = await visit(http, owner.client_id, request_uri, user)
    assert "code" in query_of(done.headers["location"])


async def test_expired_request_uri(database_url: str, tmp_root: Path) -> None:
    clock = FrozenClock()
    async with running_app(database_url, tmp_root, clock=clock) as (_, services, http):
        client, user = await make_client(services), await make_user(services)
        _, challenge = pkce_pair()
        request_uri = (await push(http, client, auth_request(client, challenge))).json()["request_uri"]
        clock.advance(61)
        invalid_request_uri_page(await visit(http, client.client_id, request_uri, user))


async def test_par_validates_like_authorize(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    _, challenge = pkce_pair()
    cases = [
        ({"code_challenge": ""}, "invalid_request"),  # PKCE required (FAPI …-par-ensure-pkce-required)
        ({"code_challenge_method": "plain"}, "invalid_request"),  # …-par-plain-pkce-rejected
        ({"redirect_uri": "https://evil.example/cb"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "openid not-a-scope"}, "invalid_scope"),
        ({"request_uri": PREFIX + "x"}, "invalid_request"),
        ({"request": "eyJ.eyJ.x"}, "request_not_supported"),
    ]
    for change, error in cases:
        params = {k: v for k, v in {**auth_request(client, challenge), **change}.items() if v}
        response = await push(http, client, params)
        assert response.status_code == 400, (change, response.text)
        assert response.json()["error"] == error and "request_uri" not in response.json(), change
        assert "location" not in response.headers


async def test_par_needs_client_authentication_and_post(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    _, challenge = pkce_pair()
    params = auth_request(client, challenge)
    # conformance suite: …-par-attempt-invalid-http-method
    for method in ("GET", "PUT", "DELETE"):
        response = await http.request(method, "/par", params=params)
        assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert (await http.post("/par", data=params)).json()["error"] == "invalid_client"
    wrong = await http.post("/par", data=params, auth=(client.client_id, "cs_wrong"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    # The client_id in the body must be the authenticated one.
    other = await make_client(services)
    mismatch = await push(http, client, {**params, "client_id": other.client_id})
    assert mismatch.status_code == 400 and mismatch.json()["error"] == "invalid_request"


async def test_a_client_can_be_required_to_push(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, require_pushed_authorization_requests=True)
    user = await make_user(services)
    _, challenge = pkce_pair()
    direct = await http.get("/authorize", params=auth_request(client, challenge))
    assert direct.status_code == 303
    assert query_of(direct.headers["location"])["error"] == "invalid_request"
    request_uri = (await push(http, client, auth_request(client, challenge))).json()["request_uri"]
    assert "code" in query_of((await visit(http, client.client_id, request_uri, user)).headers["location"])


async def test_par_required_for_everyone(database_url: str, tmp_root: Path) -> None:
    async with running_app(database_url, tmp_root, AUTHSERVER_PAR__REQUIRED="true") as (_, services, http):
        client = await make_client(services)
        _, challenge = pkce_pair()
        direct = await http.get("/authorize", params=auth_request(client, challenge))
        assert query_of(direct.headers["location"])["error"] == "invalid_request"
        metadata = (await http.get("/.well-known/openid-configuration")).json()
        assert metadata["require_pushed_authorization_requests"] is True


async def test_discovery_advertises_par_and_the_auth_methods(http: httpx.AsyncClient) -> None:
    metadata = (await http.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["pushed_authorization_request_endpoint"] == "http://testserver/par"
    assert metadata["require_pushed_authorization_requests"] is False
    methods = ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt"]
    assert metadata["token_endpoint_auth_methods_supported"] == [*methods, "none"]
    assert metadata["introspection_endpoint_auth_methods_supported"] == methods
    assert metadata["revocation_endpoint_auth_methods_supported"] == [*methods, "none"]
    for name in ("token", "introspection", "revocation"):
        algs = metadata[f"{name}_endpoint_auth_signing_alg_values_supported"]
        assert {"PS256", "ES256", "Ed25519", "RS256", "HS256"} <= set(algs) and "none" not in algs
