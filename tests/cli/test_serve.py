"""`authserver serve` on an empty directory: the embedded default starts, prints a demo set-up that works.

A real subprocess on a free loopback port, with no AUTHSERVER_* variable and no config file: SQLite file,
in-process cache, generated encryption key, migrations and signing keys on first start.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

STARTUP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    port = free_port()
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    workdir = tmp_path / "empty"
    workdir.mkdir()
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "authserver", "serve", "--port", str(port)],
            cwd=workdir, env=env, stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        yield process, port, log
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


async def wait_for_discovery(process: subprocess.Popen[bytes], url: str, log: Path) -> httpx.Response:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    async with httpx.AsyncClient() as client:
        while loop.time() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"authserver serve exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                response = await client.get(f"{url}/.well-known/openid-configuration", timeout=2)
                if response.status_code == 200:
                    return response
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"no discovery within {STARTUP_TIMEOUT} s:\n{log.read_text()[-3000:]}")


async def test_serve_on_an_empty_directory_prints_a_working_demo(
    served: tuple[subprocess.Popen[bytes], int, Path],
) -> None:
    process, port, log = served
    issuer = f"http://127.0.0.1:{port}"
    discovery = await wait_for_discovery(process, issuer, log)
    assert discovery.json()["issuer"] == issuer
    output = log.read_text()
    service = re.search(r"client_id=demo-service client_secret=(\S+)", output)
    user = re.search(r"username=demo password=(\S+)", output)
    assert service and user, output
    assert "client_id=demo-web" in output
    workdir = log.parent / "empty"
    assert (workdir / "authserver.db").exists() and (workdir / "authserver-secrets.json").exists()

    async with httpx.AsyncClient(base_url=issuer) as http:
        token = await http.post(
            "/token", data={"grant_type": "client_credentials", "scope": "read:levels"},
            auth=("demo-service", service[1]),
        )
        assert token.status_code == 200, token.text
        assert token.json()["token_type"] == "Bearer" and token.json()["scope"] == "read:levels"
        wrong = await http.post("/token", data={"grant_type": "client_credentials"}, auth=("demo-service", "nope"))
        assert wrong.status_code == 401

        # The printed user signs in: /authorize with the demo web client leads to /login, which accepts it.
        authorize = await http.get("/authorize", params={
            "response_type": "code", "client_id": "demo-web", "redirect_uri": "http://127.0.0.1:8080/callback",
            "scope": "openid", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256", "state": "s1",
        })
        assert authorize.status_code == 303 and authorize.headers["location"].startswith("/login?i=")
        page = await http.get(authorize.headers["location"])
        fields = dict(re.findall(r'name="(i|csrf)" value="([^"]*)"', page.text))
        login = await http.post("/login", data={**fields, "username": "demo", "password": user[1]})
        assert login.status_code == 303, login.text
        assert login.headers["location"].startswith("/authorize/resume")

    # SIGTERM shuts down gracefully; uvicorn then re-raises the signal, so the exit status names it.
    process.terminate()
    assert process.wait(timeout=20) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in log.read_text()
