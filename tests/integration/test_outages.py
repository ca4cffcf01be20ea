"""Dependency outages (SPEC R-01, R-04): the shared cache down fails the browser flow closed with a 503
page (no redirect, no code), while machine tokens, discovery and JWKS keep working."""

from __future__ import annotations

from pathlib import Path

from tests.support.apps import auth_params, running_app
from tests.support.factories import make_client, pkce_pair


async def test_cache_down_fails_the_browser_flow_closed(database_url: str, tmp_root: Path) -> None:
    async with running_app(database_url, tmp_root, AUTHSERVER_CACHE__URL="redis://127.0.0.1:1/0") as (_, services, http):
        client = await make_client(services)
        page = await http.get("/authorize", params=auth_params(client.client_id, pkce_pair()[1]))
        assert page.status_code == 503
        assert "location" not in page.headers and page.headers["retry-after"].isdigit()
        assert (await http.get("/login", params={"i": "x"})).status_code == 503
        machine = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, str(client.secret)))
        assert machine.status_code == 200
        assert (await http.get("/jwks")).status_code == 200
        assert (await http.get("/.well-known/openid-configuration")).status_code == 200
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["cache"] is False
