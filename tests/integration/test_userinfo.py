"""UserInfo (OIDC Core §5.3-5.4) with Bearer tokens (RFC 6750 §2.1 header, §2.2 form body, §3 errors)."""

from __future__ import annotations

from pathlib import Path

import httpx
import jwt
import pytest

from authserver.clock import FrozenClock
from authserver.services import Services
from tests.support.apps import running_app
from tests.support.factories import AppClient, authorize, make_client, make_user, redeem


def narrowed_audience(token: str) -> list[str]:
    aud = jwt.decode(token, options={"verify_signature": False})["aud"]
    return [aud] if isinstance(aud, str) else aud


async def tokens_for(
    http: httpx.AsyncClient, services: Services, scope: str, *, client: AppClient | None = None, extra: dict[str, str] | None = None,
) -> tuple[dict[str, str], str, str]:
    client = client or await make_client(services)
    user = await make_user(services)
    params, verifier = await authorize(http, client, user, scope=scope, extra=extra)
    response = await redeem(http, client, params["code"], verifier)
    assert response.status_code == 200
    return response.json(), user.account_id, user.username


@pytest.mark.parametrize(
    ("scope", "claims"),
    [
        ("openid", {"sub"}),
        ("openid profile", {"sub", "name", "preferred_username", "updated_at"}),
        ("openid email", {"sub", "email", "email_verified"}),
        ("openid profile email", {"sub", "name", "preferred_username", "updated_at", "email", "email_verified"}),
    ],
)
async def test_claims_follow_the_scopes(http: httpx.AsyncClient, services: Services, scope: str, claims: set[str]) -> None:
    tokens, account_id, username = await tokens_for(http, services, scope)
    response = await http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == claims
    assert body["sub"] == account_id
    if "email" in claims:
        assert body["email"] == f"{username}@example.org" and body["email_verified"] is True


async def test_get_post_header_and_post_body_agree(http: httpx.AsyncClient, services: Services) -> None:
    tokens, _, _ = await tokens_for(http, services, "openid profile")
    token = tokens["access_token"]
    by_get = await http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
    by_post = await http.post("/userinfo", headers={"Authorization": f"bearer {token}"})  # scheme is case-insensitive
    by_body = await http.post("/userinfo", data={"access_token": token})
    assert by_get.status_code == by_post.status_code == by_body.status_code == 200
    assert by_get.json() == by_post.json() == by_body.json()


async def test_invalid_token_is_401_with_bearer_error(http: httpx.AsyncClient) -> None:
    for authorization in ["Bearer not-a-token", "Bearer a.b.c", "Bearer " + "x" * 9000, "Basic dXNlcjpwYXNz", "Bearer", "Bearer  "]:
        response = await http.get("/userinfo", headers={"Authorization": authorization})
        assert response.status_code == 401, authorization
        assert response.json()["error"] == "invalid_token"
        assert response.headers["www-authenticate"].startswith('Bearer ') and 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_missing_token_is_401_with_bearer_challenge(http: httpx.AsyncClient) -> None:
    response = await http.get("/userinfo")
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer")


async def test_token_sent_twice_is_invalid_request(http: httpx.AsyncClient, services: Services) -> None:
    tokens, _, _ = await tokens_for(http, services, "openid")
    token = tokens["access_token"]
    response = await http.post("/userinfo", data={"access_token": token}, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_id_token_is_not_an_access_token(http: httpx.AsyncClient, services: Services) -> None:
    tokens, _, _ = await tokens_for(http, services, "openid")
    response = await http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['id_token']}"})
    assert response.status_code == 401


async def test_token_without_openid_is_insufficient_scope(http: httpx.AsyncClient, services: Services) -> None:
    issuer = services.settings.server.issuer
    client = await make_client(services, audience=[issuer])
    tokens, _, _ = await tokens_for(http, services, "profile read:levels", client=client)
    response = await http.get("/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert response.status_code == 403 and response.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_a_machine_token_for_a_data_api_is_refused(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"])
    machine = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))
    response = await http.get("/userinfo", headers={"Authorization": f"Bearer {machine.json()['access_token']}"})
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"


async def test_a_token_narrowed_to_a_data_api_is_not_a_userinfo_token(http: httpx.AsyncClient, services: Services) -> None:
    """RFC 8707: with ``resource`` the token is for that API only; without it, ``openid`` adds the UserInfo audience."""
    narrowed, _, _ = await tokens_for(http, services, "openid profile", extra={"resource": "https://api.cmipro.example"})
    assert narrowed_audience(narrowed["access_token"]) == ["https://api.cmipro.example"]
    response = await http.get("/userinfo", headers={"Authorization": f"Bearer {narrowed['access_token']}"})
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"
    default, _, _ = await tokens_for(http, services, "openid profile")
    assert narrowed_audience(default["access_token"]) == ["https://api.cmipro.example", f"{services.settings.server.issuer}/userinfo"]
    assert (await http.get("/userinfo", headers={"Authorization": f"Bearer {default['access_token']}"})).status_code == 200


async def test_revoked_grant_and_disabled_account_stop_userinfo(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    params, verifier = await authorize(http, client, user)
    token = (await redeem(http, client, params["code"], verifier)).json()["access_token"]
    assert (await http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    await redeem(http, client, params["code"], verifier)  # code reuse revokes the grant
    assert (await http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})).status_code == 401
    other = await make_user(services)
    http.cookies.clear()
    params, verifier = await authorize(http, client, other)
    token = (await redeem(http, client, params["code"], verifier)).json()["access_token"]
    await services.accounts.set_disabled(other.account_id, True)
    assert (await http.get("/userinfo", headers={"Authorization": f"Bearer {token}"})).status_code == 401


async def test_expired_token_is_rejected(database_url: str, tmp_root: Path) -> None:
    clock = FrozenClock()
    async with running_app(database_url, tmp_root, clock=clock) as (_, services, http):
        tokens, _, _ = await tokens_for(http, services, "openid")
        headers = {"Authorization": f"Bearer {tokens['access_token']}"}
        clock.advance(899)
        assert (await http.get("/userinfo", headers=headers)).status_code == 200
        clock.advance(1)
        response = await http.get("/userinfo", headers=headers)
        assert response.status_code == 401 and 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_wrong_method_is_405(http: httpx.AsyncClient) -> None:
    response = await http.delete("/userinfo")
    assert response.status_code == 405 and response.headers["allow"] == "GET, POST"
