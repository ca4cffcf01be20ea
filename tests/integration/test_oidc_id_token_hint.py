"""id_token_hint at /authorize (OIDC Core §3.1.2.1): an ID token this server issued to the requesting client,
verified like the /logout hint (one verifier). With ``prompt=none`` a hint naming someone other than the
person signed in (or nobody signed in) is ``login_required``; a forged, malformed or foreign hint is
``invalid_request``, redirected to the validated redirect URI. An expired hint is accepted: it names a
person, it grants nothing."""

from __future__ import annotations

import base64
import json

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

from authserver.services import Services
from tests.conftest import ISSUER
from tests.support.apps import auth_params, location
from tests.support.factories import (
    REDIRECT_URI,
    AppClient,
    Person,
    authorize,
    make_client,
    make_user,
    pkce_pair,
    query_of,
    sign_in,
)
from tests.support.lifecycle import issue


def _redirected(response: httpx.Response) -> dict[str, str]:
    target = location(response)
    assert target.startswith(REDIRECT_URI), target
    return query_of(target)


async def _switch_person(http: httpx.AsyncClient, services: Services, client: AppClient) -> Person:
    """The browser signs in as a new person (prompt=login replaces its session)."""
    person = await make_user(services)
    answer, _ = await authorize(http, client, person, extra={"prompt": "login"})
    assert "code" in answer
    return person


async def _authorize(http: httpx.AsyncClient, client_id: str, hint: str, **extra: str) -> httpx.Response:
    return await http.get("/authorize", params=auth_params(client_id, pkce_pair()[1], id_token_hint=hint, **extra))


async def test_hint_of_the_signed_in_person_passes_prompt_none(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    answer = _redirected(await _authorize(http, issued.client.client_id, issued.tokens["id_token"], prompt="none"))
    assert "code" in answer and answer["state"] == "st-1"


async def test_an_expired_hint_of_ours_is_accepted(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    expired = services.signer.id_token(
        client_id=issued.client.client_id, subject=issued.user.account_id, ttl=-3600, auth_time=None, nonce=None,
        amr=[], acr=None, access_token=None,
    )
    answer = _redirected(await _authorize(http, issued.client.client_id, expired, prompt="none"))
    assert "code" in answer


async def test_hint_for_someone_else_or_nobody_signed_in_is_login_required(http: httpx.AsyncClient, services: Services) -> None:
    first = await issue(http, services)
    await _switch_person(http, services, first.client)
    answer = _redirected(await _authorize(http, first.client.client_id, first.tokens["id_token"], prompt="none"))
    assert answer["error"] == "login_required" and answer["iss"] == ISSUER and "code" not in answer
    http.cookies.clear()
    answer = _redirected(await _authorize(http, first.client.client_id, first.tokens["id_token"], prompt="none"))
    assert answer["error"] == "login_required"


async def test_without_prompt_none_the_hinted_person_must_sign_in(http: httpx.AsyncClient, services: Services) -> None:
    first = await issue(http, services)
    second = await _switch_person(http, services, first.client)
    # Signed in as the second person; the hint names the first: the login prompt, then a code for the first.
    start = await _authorize(http, first.client.client_id, first.tokens["id_token"])
    assert location(start).startswith("/login")
    done = await sign_in(http, location(start), first.user)
    answer = _redirected(await http.get(location(done)))
    assert "code" in answer
    # Signing in as someone else than the hint names ends in login_required, not a code for them.
    start = await _authorize(http, first.client.client_id, first.tokens["id_token"], prompt="login")
    done = await sign_in(http, location(start), second)
    answer = _redirected(await http.get(location(done)))
    assert answer["error"] == "login_required" and "code" not in answer


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_forged_malformed_or_foreign_hints_are_invalid_request(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    other_client = await make_client(services)
    other = await issue(http, services, client=other_client, user=await make_user(services))
    header, payload, signature = issued.tokens["id_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    foreign_key = ECKey.generate_key("P-256")
    kid = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["kid"]
    key = services.keys.signing_key("ES256")
    hints = {
        "malformed": "not-a-jwt",
        "bad signature": f"{header}.{payload}.{signature[:-4]}AAAA",
        "changed claims": f"{header}.{_b64({**claims, 'sub': other.user.account_id})}.{signature}",
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "foreign key": jwt.encode({"alg": "ES256", "typ": "JWT", "kid": kid}, claims, foreign_key),
        "other issuer": jwt.encode({"alg": "ES256", "typ": "JWT", "kid": key.kid}, {**claims, "iss": "https://evil.example"}, key.key),
        "access token": issued.access,
        "another client's id token": other.tokens["id_token"],
        "trailing garbage": issued.tokens["id_token"] + "x",
    }
    for name, hint in hints.items():
        for extra in ({"prompt": "none"}, {}):
            answer = _redirected(await _authorize(http, issued.client.client_id, hint, **extra))
            assert answer["error"] == "invalid_request", (name, answer)
            assert answer["state"] == "st-1" and answer["iss"] == ISSUER and "code" not in answer
    # the hint is checked only once the redirect URI is: an unknown redirect URI is still an error page
    page = await http.get("/authorize", params=auth_params(issued.client.client_id, pkce_pair()[1], id_token_hint="x", redirect_uri="https://evil.example/cb"))
    assert page.status_code == 400 and "location" not in page.headers
