"""`authserver registration issue-token --port` signs for the issuer `serve --port` serves (no issuer
configured: http://host:port), so the token is accepted at that server's /register."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest
from asgi_lifespan import LifespanManager

from authserver.app import create_app
from authserver.cli import main
from authserver.settings import load_settings
from tests.conftest import environ_for, fast_passwords


def test_issue_token_uses_the_served_issuer(backend: str, database_url: str, tmp_root: Path,
                                            monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    env = environ_for(backend, database_url, tmp_root)
    env.pop("AUTHSERVER_SERVER__ISSUER")
    monkeypatch.delenv("AUTHSERVER_SERVER__ISSUER", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AUTHSERVER_SERVER__PORT", "8000")  # restored afterwards (the CLI sets it)
    assert main(["registration", "issue-token", "--port", "9123", "--ttl", "300"]) == 0
    token = capsys.readouterr().out.strip()
    served = "http://127.0.0.1:9123"
    assert pyjwt.decode(token, options={"verify_signature": False})["aud"] in (f"{served}/register", [f"{served}/register"])

    async def register() -> int:
        settings = load_settings({**env, "AUTHSERVER_SERVER__PORT": "9123"})
        assert settings.server.issuer == served
        app = create_app(settings, passwords=fast_passwords())
        async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=served) as http:
            response = await http.post("/register", json={"redirect_uris": ["https://app.example/cb"], "client_name": "App"},
                                       headers={"Authorization": f"Bearer {token}"})
            return response.status_code

    assert asyncio.run(register()) == 201
