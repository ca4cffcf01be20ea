"""OIDC Core §3.1.2.1 prompt and max_age, §3.1.2.6 errors; auth_time on a FrozenClock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest

from authserver.clock import FrozenClock
from authserver.services import Services
from tests.conftest import ISSUER
from tests.support.apps import auth_params, location, path_of, running_app
from tests.support.factories import AppClient, Person, make_client, make_user, pkce_pair, query_of, redeem, sign_in


class Env:
    def __init__(self, services: Services, http: httpx.AsyncClient, clock: FrozenClock) -> None:
        self.services, self.http, self.clock = services, http, clock


@pytest.fixture
async def env(database_url: str, tmp_root: Path) -> AsyncIterator[Env]:
    clock = FrozenClock()
    async with running_app(database_url, tmp_root, clock=clock) as (_, services, http):
        yield Env(services, http, clock)


async def start(env: Env, client: AppClient, **extra: str) -> tuple[httpx.Response, str]:
    verifier, challenge = pkce_pair()
    response = await env.http.get("/authorize", params=auth_params(client.client_id, challenge, **extra))
    return response, verifier


async def finish(env: Env, response: httpx.Response, user: Person | None) -> dict[str, str]:
    """Follow login / resume until the client's redirect; fails if login is needed and user is None."""
    for _ in range(5):
        target = location(response)
        if target.startswith("https://app.example/"):
            return query_of(target)
        if path_of(target) == "/login":
            assert user is not None, "unexpected login prompt"
            response = await sign_in(env.http, target, user)
        else:
            response = await env.http.get(target)
    raise AssertionError("too many redirects")


async def id_token_of(env: Env, client: AppClient, params: dict[str, str], verifier: str) -> dict[str, object]:
    body = (await redeem(env.http, client, params["code"], verifier)).json()
    return pyjwt.decode(body["id_token"], options={"verify_signature": False})


async def test_prompt_none_without_session_is_login_required(env: Env) -> None:
    client = await make_client(env.services)
    response, _ = await start(env, client, prompt="none")
    assert query_of(location(response)) == {
        "error": "login_required", "error_description": "The user is not signed in.", "state": "st-1", "iss": ISSUER,
    }


async def test_prompt_none_with_session_is_silent_and_keeps_auth_time(env: Env) -> None:
    client = await make_client(env.services)
    user = await make_user(env.services)
    response, verifier = await start(env, client)
    first = await id_token_of(env, client, await finish(env, response, user), verifier)
    env.clock.advance(120)
    response, verifier = await start(env, client, prompt="none")
    params = await finish(env, response, None)
    second = await id_token_of(env, client, params, verifier)
    assert second["sub"] == first["sub"] and second["auth_time"] == first["auth_time"]


async def test_prompt_none_without_consent_is_consent_required(env: Env) -> None:
    client = await make_client(env.services, first_party=False)
    user = await make_user(env.services)
    response, _ = await start(env, client)
    await sign_in(env.http, location(response), user)  # signed in, never consented
    response, _ = await start(env, client, prompt="none")
    error = query_of(location(response))
    assert error["error"] == "consent_required" and error["state"] == "st-1" and error["iss"] == ISSUER


@pytest.mark.parametrize("prompt", ["none login", "none consent", "bogus", "login bogus"])
async def test_invalid_prompt_values_are_invalid_request(env: Env, prompt: str) -> None:
    client = await make_client(env.services)
    response, _ = await start(env, client, prompt=prompt)
    assert query_of(location(response))["error"] == "invalid_request"


async def test_prompt_login_forces_a_new_sign_in_and_a_later_auth_time(env: Env) -> None:
    client = await make_client(env.services)
    user = await make_user(env.services)
    response, verifier = await start(env, client)
    first = await id_token_of(env, client, await finish(env, response, user), verifier)
    env.clock.advance(30)
    response, verifier = await start(env, client, prompt="login")
    assert path_of(location(response)) == "/login"
    second = await id_token_of(env, client, await finish(env, response, user), verifier)
    assert second["auth_time"] == first["auth_time"] + 30  # type: ignore[operator]


async def test_prompt_login_cannot_be_skipped_by_resuming_directly(env: Env) -> None:
    """Even when the old sign-in is recent (same second), the interaction needs a new one."""
    client = await make_client(env.services)
    user = await make_user(env.services)
    response, _ = await start(env, client)
    await finish(env, response, user)
    response, _ = await start(env, client, prompt="login")
    login = location(response)
    assert path_of(login) == "/login"
    interaction = query_of(login)["i"]
    skipped = await env.http.get(f"/authorize/resume?i={interaction}")
    assert path_of(location(skipped)) == "/login"


@pytest.mark.parametrize(("max_age", "elapsed", "relogin"), [("0", 0, True), ("1", 2, True), ("10000", 600, False)])
async def test_max_age(env: Env, max_age: str, elapsed: int, relogin: bool) -> None:
    client = await make_client(env.services)
    user = await make_user(env.services)
    response, verifier = await start(env, client)
    first = await id_token_of(env, client, await finish(env, response, user), verifier)
    env.clock.advance(elapsed)
    response, verifier = await start(env, client, max_age=max_age)
    assert (path_of(location(response)) == "/login") is relogin
    second = await id_token_of(env, client, await finish(env, response, user), verifier)
    assert "auth_time" in second
    assert second["auth_time"] == first["auth_time"] + (elapsed if relogin else 0)  # type: ignore[operator]


@pytest.mark.parametrize("max_age", ["-1", "abc", "1.5", "99999999999", "١"])
async def test_malformed_max_age_is_invalid_request(env: Env, max_age: str) -> None:
    client = await make_client(env.services)
    response, _ = await start(env, client, max_age=max_age)
    assert query_of(location(response))["error"] == "invalid_request"


async def test_login_hint_prefills_and_ui_locales_picks_the_language(env: Env) -> None:
    client = await make_client(env.services)
    response, _ = await start(env, client, login_hint="ana@example.org", ui_locales="en-US es")
    page = await env.http.get(location(response))
    assert page.status_code == 200
    assert 'value="ana@example.org"' in page.text
    assert '<html lang="en">' in page.text
    response, _ = await start(env, client)
    assert '<html lang="es">' in (await env.http.get(location(response))).text
