"""A scope removed from a client is gone from the next refresh of every refresh token issued before
(issue 16): the refresh grant issues the family's scope intersected with the client's current scopes,
on PostgreSQL's one-statement path and on the general (ORM) path, which SQLite always takes.
"""

from __future__ import annotations

import httpx
import jwt
from starlette.applications import Starlette

from authserver.admin.service import CLI
from authserver.services import Services
from tests.support.factories import ALL_SCOPES
from tests.support.lifecycle import auth_of, issue, refresh

SCOPE = "openid offline_access read:levels read:alerts"


def scope_claim(access_token: str) -> list[str]:
    claims = jwt.decode(access_token, options={"verify_signature": False})
    return str(claims.get("scope", "")).split()


async def test_a_removed_scope_is_gone_from_the_next_refresh(http: httpx.AsyncClient, app: Starlette, services: Services, backend: str) -> None:
    issued = await issue(http, services, scope=SCOPE)
    assert "read:alerts" in issued.tokens["scope"].split()
    # PostgreSQL refreshes without `scope` in one statement (storage/sql/fastpath.py); SQLite has no fast path.
    assert (services.fast_path is not None) == (backend == "postgres")
    await app.state.admin.update_client(
        issued.client.client_id, {"scopes": [s for s in ALL_SCOPES if s != "read:alerts"]}, actor=CLI
    )

    first = await refresh(http, issued.client, issued.tokens["refresh_token"])
    assert first.status_code == 200, first.text
    assert first.json()["scope"].split() == ["openid", "offline_access", "read:levels"]
    assert scope_claim(first.json()["access_token"]) == ["openid", "offline_access", "read:levels"]

    # The general path (a request naming a scope) neither grants it nor lets a client ask for it.
    asked = await http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"], "scope": "read:alerts"},
        auth=auth_of(issued.client),
    )
    assert asked.status_code == 400 and asked.json()["error"] == "invalid_scope", asked.text
    narrowed = await http.post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": first.json()["refresh_token"], "scope": "read:levels"},
        auth=auth_of(issued.client),
    )
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "read:levels", narrowed.text
    again = await refresh(http, issued.client, narrowed.json()["refresh_token"])
    assert again.status_code == 200 and "read:alerts" not in again.json()["scope"].split(), again.text


async def test_a_scope_given_back_to_the_client_returns_to_its_families(
    http: httpx.AsyncClient, app: Starlette, services: Services
) -> None:
    """The family keeps what the person granted; the client's current scopes only bound what is issued."""
    issued = await issue(http, services, scope=SCOPE)
    client_id = issued.client.client_id
    await app.state.admin.update_client(client_id, {"scopes": [s for s in ALL_SCOPES if s != "read:alerts"]}, actor=CLI)
    narrowed = await refresh(http, issued.client, issued.tokens["refresh_token"])
    assert "read:alerts" not in narrowed.json()["scope"].split()
    await app.state.admin.update_client(client_id, {"scopes": ALL_SCOPES}, actor=CLI)
    restored = await refresh(http, issued.client, narrowed.json()["refresh_token"])
    assert "read:alerts" in restored.json()["scope"].split(), restored.text
