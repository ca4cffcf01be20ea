"""Admin API helpers: an admin client and its real access token (client credentials, scope admin)."""

from __future__ import annotations

import httpx

from authserver.services import Services
from tests.support.factories import AppClient, make_client


async def make_admin_client(services: Services, **overrides: object) -> AppClient:
    values: dict[str, object] = {"grant_types": ["client_credentials"], "scopes": ["admin"], "audience": []}
    values.update(overrides)
    return await make_client(services, **values)


async def client_token(http: httpx.AsyncClient, client: AppClient, scope: str = "admin") -> str:
    response = await http.post(
        "/token", data={"grant_type": "client_credentials", "scope": scope}, auth=(client.client_id, client.secret)
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def admin_headers(http: httpx.AsyncClient, services: Services) -> dict[str, str]:
    client = await make_admin_client(services)
    return {"Authorization": f"Bearer {await client_token(http, client)}"}
