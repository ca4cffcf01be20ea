"""A real authorization server on a free loopback port (uvicorn in a thread), for the verifier's tests.

The verifier library talks plain HTTP to it, sync and async, as a data API or a Lambda would.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from authserver.app import build_services, create_app
from authserver.services import Services
from authserver.settings import load_settings
from tests.conftest import environ_for, fast_passwords
from tests.support.factories import AppClient, make_client

AUDIENCE = "https://api.cmipro.example"


@dataclass
class LiveServer:
    url: str
    services: Services  # bound to the test's event loop: for creating clients and users

    @property
    def issuer(self) -> str:
        return self.url

    async def token(self, client: AppClient, scope: str = "read:levels") -> str:
        async with httpx.AsyncClient(base_url=self.url) as http:
            response = await http.post(
                "/token", data={"grant_type": "client_credentials", "scope": scope}, auth=(client.client_id, client.secret)
            )
        assert response.status_code == 200, response.text
        token: str = response.json()["access_token"]
        return token

    async def service_client(self, **overrides: object) -> AppClient:
        values: dict[str, object] = {"grant_types": ["client_credentials"], "scopes": ["read:levels", "read:alerts"]}
        values.update(overrides)
        return await make_client(self.services, **values)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
async def live(database_url: str, tmp_root: Path) -> AsyncIterator[LiveServer]:
    backend = "postgres" if database_url.startswith("postgresql") else "sqlite"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    settings = load_settings(environ_for(backend, database_url, tmp_root, AUTHSERVER_SERVER__ISSUER=url))
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings, passwords=fast_passwords()), host="127.0.0.1", port=port,
                       log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="live-authserver", daemon=True)
    thread.start()
    for _ in range(300):
        if server.started:
            break
        await asyncio.sleep(0.05)
    else:
        pytest.fail("live server did not start")
    services = build_services(settings, passwords=fast_passwords())
    try:
        yield LiveServer(url, services)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)
        await services.cache.close()
        await services.engine.dispose()
