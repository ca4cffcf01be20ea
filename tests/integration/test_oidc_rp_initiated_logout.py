"""OpenID Connect RP-Initiated Logout 1.0 at /logout: id_token_hint as proof, registered
post_logout_redirect_uri only, state echoed, a confirmation page (and no redirect) without proof."""

from __future__ import annotations

import re

import httpx
from starlette.applications import Starlette

from authserver.services import Services
from tests.conftest import ISSUER
from tests.support.lifecycle import issue

BYE = "https://app.example/bye"


def _cookie(http: httpx.AsyncClient) -> str | None:
    return http.cookies.get("authserver_session")


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match
    return match.group(1)


async def test_logout_with_hint_ends_the_session_and_returns_to_the_registered_uri(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services, post_logout_redirect_uris=[BYE])
    cookie = _cookie(http)
    assert await services.browser_sessions.get(cookie) is not None
    response = await http.get(
        "/logout", params={"id_token_hint": issued.tokens["id_token"], "post_logout_redirect_uri": BYE, "state": "s 1"}
    )
    assert response.status_code == 303 and response.headers["location"] == f"{BYE}?state=s+1"
    assert await services.browser_sessions.get(cookie) is None
    assert (await http.get("/account")).headers["location"].startswith("/login")


async def test_logout_accepts_post_and_an_explicit_matching_client_id(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services, post_logout_redirect_uris=[BYE])
    response = await http.post(
        "/logout",
        data={"id_token_hint": issued.tokens["id_token"], "client_id": issued.client.client_id, "post_logout_redirect_uri": BYE},
    )
    assert response.status_code == 303 and response.headers["location"] == BYE


async def test_unregistered_or_altered_redirect_uri_is_refused_without_redirect(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services, post_logout_redirect_uris=[BYE])
    cookie = _cookie(http)
    for target in ("https://evil.example/", f"{BYE}?x=1", BYE + "/", "https://app.example/callback"):
        response = await http.get("/logout", params={"id_token_hint": issued.tokens["id_token"], "post_logout_redirect_uri": target})
        assert response.status_code == 400 and "location" not in response.headers
    assert await services.browser_sessions.get(cookie) is not None


async def test_bad_hint_or_contradicting_client_id_is_an_error_page(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services, post_logout_redirect_uris=[BYE])
    header, payload, signature = issued.tokens["id_token"].split(".")
    for params in (
        {"id_token_hint": "not-a-jwt"},
        {"id_token_hint": f"{header}.{payload}.{signature[:-4]}AAAA", "post_logout_redirect_uri": BYE},
        {"id_token_hint": issued.access},  # an access token is not an ID token
        {"id_token_hint": issued.tokens["id_token"], "client_id": "someone-else", "post_logout_redirect_uri": BYE},
    ):
        response = await http.get("/logout", params=params)
        assert response.status_code == 400 and "location" not in response.headers, params
    assert await services.browser_sessions.get(_cookie(http)) is not None


async def test_without_hint_the_person_confirms_and_is_not_redirected(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services, post_logout_redirect_uris=[BYE])
    cookie = _cookie(http)
    page = await http.get(
        "/logout", params={"client_id": issued.client.client_id, "post_logout_redirect_uri": BYE, "state": "x"}
    )
    assert page.status_code == 200 and "location" not in page.headers and 'name="confirm"' in page.text
    assert await services.browser_sessions.get(cookie) is not None  # nothing ended yet
    forged = await http.post("/logout", data={"confirm": "yes", "csrf": "0" * 64})
    assert forged.status_code == 403
    assert await services.browser_sessions.get(cookie) is not None
    done = await http.post("/logout", data={"confirm": "yes", "csrf": _csrf(page.text)})
    assert done.status_code == 200 and "location" not in done.headers and 'id="signed-out"' in done.text
    assert await services.browser_sessions.get(cookie) is None


async def test_hint_for_another_person_asks_for_confirmation(app: Starlette, http: httpx.AsyncClient, services: Services) -> None:
    mine = await issue(http, services, post_logout_redirect_uris=[BYE])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as other_browser:
        theirs = await issue(other_browser, services, client=mine.client)
        response = await http.get("/logout", params={"id_token_hint": theirs.tokens["id_token"], "post_logout_redirect_uri": BYE})
        assert response.status_code == 200 and "location" not in response.headers and 'name="confirm"' in response.text
        assert await services.browser_sessions.get(_cookie(http)) is not None
        assert await services.browser_sessions.get(_cookie(other_browser)) is not None


async def test_logout_page_is_in_spanish_by_default_and_english_on_request(http: httpx.AsyncClient, services: Services) -> None:
    await issue(http, services)
    assert "¿Cerrar sesión?" in (await http.get("/logout")).text
    assert "Sign out?" in (await http.get("/logout", headers={"Accept-Language": "en"})).text


async def test_discovery_advertises_the_lifecycle_endpoints(http: httpx.AsyncClient) -> None:
    metadata = (await http.get("/.well-known/openid-configuration")).json()
    assert metadata["end_session_endpoint"] == f"{ISSUER}/logout"
    assert metadata["revocation_endpoint"] == f"{ISSUER}/revoke"
    assert metadata["introspection_endpoint"] == f"{ISSUER}/introspect"
    assert "none" not in metadata["introspection_endpoint_auth_methods_supported"]
    # /revoke authenticates clients as /token does, JWT client authentication included (mTLS: test_mtls_*).
    assert set(metadata["revocation_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none",
    }
