"""Redirect URIs (RFC 6749 §3.1.2, §4.1.2.1; RFC 9700 §2.1, §4.1.3; RFC 8252 §7.3; OIDC Core §3.1.2.1).

An unknown client or a redirect URI that is not registered gives our own 400 page with no Location:
never a redirect. Every later error goes back to the registered URI with error, state and iss.
"""

from __future__ import annotations

import httpx
import pytest

from authserver.services import Services
from tests.conftest import ISSUER
from tests.support.apps import auth_params, location
from tests.support.factories import REDIRECT_URI, make_client, make_user, pkce_pair, query_of, sign_in

CHALLENGE = pkce_pair()[1]


def assert_error_page(response: httpx.Response) -> None:
    assert response.status_code == 400, response.status_code
    assert "location" not in response.headers
    assert response.headers["content-type"].startswith("text/html")


UNREGISTERED = [
        "https://evil.example/callback",
        "https://APP.example/callback",  # case of the host: exact match means exact
        "HTTPS://app.example/callback",
        "https://app.example/callback/",
        "https://app.example/callback?x=1",
        "https://app.example/callback#frag",
        "https://app.example/callback/../callback",
        "https://app.example/%63allback",
        "https://app.example:443/callback",
        "https://app.example@evil.example/callback",  # userinfo trick
        "https://evil.example@app.example/callback",
        "https://app.example.evil.example/callback",
        "https://app.example/callbackx",
        "http://app.example/callback",
        "javascript:alert(1)//https://app.example/callback",
        "https://app.example\\@evil.example/callback",
]


async def test_unregistered_redirect_uri_gives_a_page_not_a_redirect(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    for presented in UNREGISTERED:
        response = await http.get("/authorize", params=auth_params(client.client_id, CHALLENGE, redirect_uri=presented))
        assert_error_page(response)


@pytest.mark.parametrize("client_id", ["unknown-client", "' OR 1=1 --", "x" * 65])
async def test_unknown_client_gives_a_page(http: httpx.AsyncClient, client_id: str) -> None:
    assert_error_page(await http.get("/authorize", params=auth_params(client_id, CHALLENGE)))


async def test_disabled_client_gives_a_page(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    await services.clients.set_disabled(client.client_id, True)
    assert_error_page(await http.get("/authorize", params=auth_params(client.client_id, CHALLENGE)))


async def test_missing_client_id_gives_a_page_even_with_bad_other_params(http: httpx.AsyncClient) -> None:
    params = auth_params("", CHALLENGE, response_type="token")
    assert_error_page(await http.get("/authorize", params=params))


async def test_missing_redirect_uri_with_several_registered_is_a_page(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, redirect_uris=[REDIRECT_URI, "https://app.example/other"])
    params = auth_params(client.client_id, CHALLENGE, scope="read:levels")
    del params["redirect_uri"]
    assert_error_page(await http.get("/authorize", params=params))


async def test_missing_redirect_uri_is_a_page_for_openid_requests(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    params = auth_params(client.client_id, CHALLENGE, scope="openid")
    del params["redirect_uri"]
    assert_error_page(await http.get("/authorize", params=params))


async def test_missing_redirect_uri_with_one_registered_plain_oauth_uses_it(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    params = auth_params(client.client_id, CHALLENGE, scope="read:levels", prompt="none")
    del params["redirect_uri"]
    error = query_of(location(await http.get("/authorize", params=params)))
    assert error["error"] == "login_required"


async def test_later_errors_redirect_with_state_and_iss(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    response = await http.get("/authorize", params=auth_params(client.client_id, CHALLENGE, response_type="token"))
    target = location(response)
    assert target.startswith(REDIRECT_URI + "?")
    assert query_of(target) == {
        "error": "unsupported_response_type",
        "error_description": "Only response_type=code is supported.",
        "state": "st-1",
        "iss": ISSUER,
    }


async def test_registered_query_component_is_kept(http: httpx.AsyncClient, services: Services) -> None:
    registered = "https://app.example/cb?tenant=hn"
    client = await make_client(services, redirect_uris=[registered])
    response = await http.get("/authorize", params=auth_params(client.client_id, CHALLENGE, redirect_uri=registered, prompt="none"))
    target = location(response)
    assert target.startswith("https://app.example/cb?tenant=hn&")
    assert query_of(target)["error"] == "login_required"


LOOPBACK_CASES = [
        ("http://127.0.0.1/cb", "http://127.0.0.1:51234/cb", True),
        ("http://127.0.0.1:8080/cb", "http://127.0.0.1:9999/cb", True),
        ("http://[::1]/cb", "http://[::1]:40000/cb", True),
        ("http://127.0.0.1/cb", "http://127.0.0.1:51234/other", False),
        ("http://127.0.0.1/cb", "http://127.0.0.2:51234/cb", False),
        ("http://127.0.0.1/cb", "http://user@127.0.0.1:51234/cb", False),
        ("http://127.0.0.1/cb", "https://127.0.0.1:51234/cb", False),
        ("http://localhost:8080/cb", "http://localhost:9999/cb", False),  # RFC 8252 §8.3: IP literals only
]


async def test_loopback_redirect_port_may_vary(http: httpx.AsyncClient, services: Services) -> None:
    for registered, presented, accepted in LOOPBACK_CASES:
        client = await make_client(services, client_type="public", redirect_uris=[registered])
        response = await http.get("/authorize", params=auth_params(client.client_id, CHALLENGE, redirect_uri=presented, prompt="none"))
        if accepted:
            target = location(response)
            assert target.startswith(presented + "?")
            assert query_of(target)["error"] == "login_required"
        else:
            assert_error_page(response)


async def test_loopback_port_is_fixed_for_confidential_clients(http: httpx.AsyncClient, services: Services) -> None:
    """RFC 8252 §7.3 is for native apps (public clients); a confidential client's loopback URI matches exactly."""
    client = await make_client(services, redirect_uris=["http://127.0.0.1:8080/cb"])
    assert_error_page(await http.get("/authorize", params=auth_params(client.client_id, CHALLENGE, redirect_uri="http://127.0.0.1:9999/cb", prompt="none")))
    exact = await http.get("/authorize", params=auth_params(client.client_id, CHALLENGE, redirect_uri="http://127.0.0.1:8080/cb", prompt="none"))
    assert query_of(location(exact))["error"] == "login_required"


async def test_code_is_bound_to_the_redirect_uri(http: httpx.AsyncClient, services: Services) -> None:
    other = "https://app.example/other"
    client = await make_client(services, redirect_uris=[REDIRECT_URI, other])
    user = await make_user(services)
    verifier, challenge = pkce_pair()
    start = await http.get("/authorize", params=auth_params(client.client_id, challenge, redirect_uri=other))
    done = await sign_in(http, location(start), user)
    code = query_of(location(await http.get(location(done))))["code"]
    token = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    auth = (client.client_id, str(client.secret))
    for wrong in ({"redirect_uri": REDIRECT_URI}, {}):
        response = await http.post("/token", data=token | wrong, auth=auth)
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert (await http.post("/token", data=token | {"redirect_uri": other}, auth=auth)).status_code == 200


async def test_plain_oauth_may_omit_redirect_uri_in_both_requests(http: httpx.AsyncClient, services: Services) -> None:
    """RFC 6749 §4.1.3: redirect_uri at the token endpoint is required only if it was in the authorization request."""
    client = await make_client(services)
    user = await make_user(services)
    verifier, challenge = pkce_pair()
    params = auth_params(client.client_id, challenge, scope="read:levels")
    del params["redirect_uri"]
    done = await sign_in(http, location(await http.get("/authorize", params=params)), user)
    code = query_of(location(await http.get(location(done))))["code"]
    token = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    response = await http.post("/token", data=token, auth=(client.client_id, str(client.secret)))
    assert response.status_code == 200, response.text


async def test_openid_code_always_needs_the_redirect_uri(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    verifier, challenge = pkce_pair()
    done = await sign_in(http, location(await http.get("/authorize", params=auth_params(client.client_id, challenge))), user)
    code = query_of(location(await http.get(location(done))))["code"]
    token = {"grant_type": "authorization_code", "code": code, "code_verifier": verifier}
    auth = (client.client_id, str(client.secret))
    assert (await http.post("/token", data=token, auth=auth)).json()["error"] == "invalid_grant"
    assert (await http.post("/token", data=token | {"redirect_uri": REDIRECT_URI}, auth=auth)).status_code == 200
