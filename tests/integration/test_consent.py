"""Consent (RFC 6749 §10.12, OIDC Core §3.1.2.4, ASVS 5 §10.7): shown to third-party clients, remembered
per user, client and scopes; CSRF-protected; a denial is access_denied."""

from __future__ import annotations

import httpx

from authserver.services import Services
from tests.conftest import ISSUER
from tests.support.apps import auth_params, location, path_of
from tests.support.factories import AppClient, Person, form_field, make_client, make_user, pkce_pair, query_of, sign_in


async def visit(http: httpx.AsyncClient, client: AppClient, user: Person, **extra: str) -> tuple[list[str], httpx.Response]:
    """Start a flow and sign in when asked; stop at the consent page or the client. Returns the pages seen."""
    _, challenge = pkce_pair()
    response = await http.get("/authorize", params=auth_params(client.client_id, challenge, **extra))
    seen: list[str] = []
    for _ in range(5):
        target = location(response)
        if target.startswith("https://app.example/"):
            return seen, response
        seen.append(path_of(target))
        if path_of(target) == "/login":
            response = await sign_in(http, target, user)
        elif path_of(target) == "/consent":
            page = await http.get(target)
            assert page.status_code == 200
            return seen, page
        else:
            response = await http.get(target)
    raise AssertionError("too many redirects")


async def decide(http: httpx.AsyncClient, page: httpx.Response, decision: str, **override: str) -> httpx.Response:
    data = {"i": form_field(page.text, "i"), "csrf": form_field(page.text, "csrf"), "decision": decision}
    data.update(override)
    return await http.post("/consent", data={k: v for k, v in data.items() if v != ""})


async def test_first_party_clients_skip_consent(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, first_party=True)
    seen, response = await visit(http, client, await make_user(services))
    assert seen == ["/login", "/authorize/resume"]
    assert "code" in query_of(location(response))


async def test_third_party_consent_is_shown_remembered_and_asked_again_for_new_scopes(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, first_party=False)
    user = await make_user(services)
    seen, page = await visit(http, client, user, scope="openid profile")
    assert seen[-1] == "/consent"
    assert 'data-scope="openid"' in page.text and 'data-scope="profile"' in page.text
    assert client.info.name in page.text
    done = await decide(http, page, "allow")
    assert "code" in query_of(location(done))
    assert await services.consents.granted_scopes(user.account_id, client.client_id) == {"openid", "profile"}

    seen, response = await visit(http, client, user, scope="profile openid")  # same scopes, any order: no page
    assert "/consent" not in seen and "code" in query_of(location(response))
    seen, response = await visit(http, client, user, scope="openid")  # a subset: no page
    assert "/consent" not in seen

    seen, page = await visit(http, client, user, scope="openid profile email")  # a new scope asks again
    assert seen[-1] == "/consent"
    await decide(http, page, "allow")
    assert await services.consents.granted_scopes(user.account_id, client.client_id) == {"openid", "profile", "email"}


async def test_consent_is_per_user_and_per_client(http: httpx.AsyncClient, services: Services) -> None:
    first = await make_client(services, first_party=False)
    second = await make_client(services, first_party=False)
    ana = await make_user(services)
    _, page = await visit(http, first, ana)
    await decide(http, page, "allow")
    seen, _ = await visit(http, second, ana)
    assert seen[-1] == "/consent"
    http.cookies.clear()
    seen, _ = await visit(http, first, await make_user(services))
    assert seen[-1] == "/consent"


async def test_prompt_consent_forces_the_page(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, first_party=False)
    user = await make_user(services)
    _, page = await visit(http, client, user)
    await decide(http, page, "allow")
    seen, page = await visit(http, client, user, prompt="consent")
    assert seen == ["/consent"]
    assert "code" in query_of(location(await decide(http, page, "allow")))


async def test_deny_is_access_denied_with_state_and_iss(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, first_party=False)
    user = await make_user(services)
    _, page = await visit(http, client, user)
    denied = await decide(http, page, "deny")
    assert query_of(location(denied)) == {
        "error": "access_denied", "error_description": "The user denied the request.", "state": "st-1", "iss": ISSUER,
    }
    assert await services.consents.granted_scopes(user.account_id, client.client_id) == set()
    # the interaction is finished: replaying the form does nothing
    again = await decide(http, page, "allow")
    assert again.status_code == 400 and "location" not in again.headers


async def test_consent_post_needs_the_csrf_token(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, first_party=False)
    user = await make_user(services)
    _, page = await visit(http, client, user)
    for csrf in ("wrong", ""):
        response = await decide(http, page, "allow", csrf=csrf)
        assert response.status_code == 403 and "location" not in response.headers
    assert await services.consents.granted_scopes(user.account_id, client.client_id) == set()
    # the interaction still works with the right token
    assert "code" in query_of(location(await decide(http, page, "allow")))


async def test_consent_form_only_works_in_the_browser_that_started_it(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, first_party=False)
    user = await make_user(services)
    _, page = await visit(http, client, user)
    session_cookie = http.cookies["authserver_session"]
    http.cookies.delete("authserver_browser")
    http.cookies.set("authserver_browser", "another-browser-id-0123456789")
    assert http.cookies["authserver_session"] == session_cookie
    response = await decide(http, page, "allow")
    assert response.status_code == 403
    assert await services.consents.granted_scopes(user.account_id, client.client_id) == set()


async def test_consent_without_session_goes_to_login(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, first_party=False)
    user = await make_user(services)
    _, page = await visit(http, client, user)
    http.cookies.clear()
    response = await decide(http, page, "allow")
    assert path_of(location(response)) == "/login"
    assert await services.consents.granted_scopes(user.account_id, client.client_id) == set()
