"""PKCE (RFC 7636; RFC 9700 §2.1.1): S256 required for every client, plain refused, verifier checked."""

from __future__ import annotations

import httpx
import pytest

from authserver.services import Services
from tests.conftest import ISSUER
from tests.support.apps import auth_params, location
from tests.support.factories import REDIRECT_URI, authorize, make_client, make_user, pkce_pair, query_of, redeem


def _error_of(response: httpx.Response) -> dict[str, str]:
    target = location(response)
    assert target.startswith(REDIRECT_URI), target
    return query_of(target)


BAD_PKCE = [
        (None, None),  # no PKCE at all: also the RFC 9700 §2.1.1 downgrade defence (no code without a challenge)
        ("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", None),  # method defaults to plain: refused
        ("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "plain"),
        ("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "s256"),  # method is case-sensitive
        (None, "S256"),
        ("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c", "S256"),  # 42 characters
        ("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cMM", "S256"),  # 44 characters
        ("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c=", "S256"),  # padding
        ("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM", "S256"),  # base64, not base64url
        ("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw.cM", "S256"),  # verifier alphabet, not a hash
        ("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\n", "S256"),  # a trailing newline (Python's `$` allows it)
]


@pytest.mark.parametrize("client_type", ["confidential", "public"])
async def test_authorization_request_without_valid_s256_is_invalid_request(
    http: httpx.AsyncClient, services: Services, client_type: str
) -> None:
    client = await make_client(services, client_type=client_type)
    for challenge, method in BAD_PKCE:
        params = auth_params(client.client_id, challenge or "", code_challenge_method=method or "")
        response = await http.get("/authorize", params=params)
        error = _error_of(response)
        assert error["error"] == "invalid_request", (challenge, method)
        assert error["state"] == "st-1" and error["iss"] == ISSUER
        assert "code" not in error


async def test_wrong_verifier_is_invalid_grant_and_the_code_survives(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    params, verifier = await authorize(http, client, user)
    other_verifier, _ = pkce_pair()
    for bad in (other_verifier, verifier[:42], verifier + "~" * 100, verifier.upper() if verifier != verifier.upper() else "x" * 43):
        response = await redeem(http, client, params["code"], bad)
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant", bad
    assert (await redeem(http, client, params["code"], verifier)).status_code == 200


async def test_missing_verifier_is_invalid_grant_pinned(http: httpx.AsyncClient, services: Services) -> None:
    """SPEC §0.1.2 pin: FAPI 2.0 conformance expects invalid_grant, not invalid_request."""
    client = await make_client(services, client_type="public")
    user = await make_user(services)
    params, verifier = await authorize(http, client, user)
    response = await http.post(
        "/token",
        data={"grant_type": "authorization_code", "code": params["code"], "redirect_uri": REDIRECT_URI, "client_id": client.client_id},
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert (await redeem(http, client, params["code"], verifier)).status_code == 200


async def test_verifier_of_another_authorization_request_does_not_work(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    first, first_verifier = await authorize(http, client, user)
    second, second_verifier = await authorize(http, client, user)
    assert (await redeem(http, client, first["code"], second_verifier)).json()["error"] == "invalid_grant"
    assert (await redeem(http, client, second["code"], first_verifier)).json()["error"] == "invalid_grant"
    assert (await redeem(http, client, first["code"], first_verifier)).status_code == 200
