"""Fuzz the admin API from its OpenAPI description (schemathesis) against a real server: no 5xx, ever.

A real `authserver serve` (uvicorn, SQLite) on a free loopback port; an admin client created through the
CLI; schemathesis generates valid and invalid requests for every operation with a bounded number of
examples (and a fixed seed) so the run stays short and reproducible.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL, RUN_ID

SCHEMATHESIS = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_admin_api_fuzzed_from_its_openapi_description_has_no_server_errors(tmp_path: Path) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AUTHSERVER_SERVER__ISSUER": issuer,
        "AUTHSERVER_SERVER__PORT": str(port),
        "AUTHSERVER_SERVER__DEMO": "false",
        "AUTHSERVER_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}",
        "AUTHSERVER_SECURITY__KEY_FILE": str(tmp_path / "secrets.json"),
        "AUTHSERVER_CACHE__URL": REDIS_URL,
        "AUTHSERVER_CACHE__KEY_PREFIX": f"authserver-test-{RUN_ID}-fuzz:",
        "AUTHSERVER_OBSERVABILITY__LOG_LEVEL": "WARNING",
    }
    cli = [sys.executable, "-m", "authserver"]
    subprocess.run([*cli, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    created = subprocess.run(
        [*cli, "client", "create", "--name", "fuzzer", "--type", "confidential", "--grant", "client_credentials",
         "--scope", "admin", "--json"],
        env=env, check=True, capture_output=True, text=True, timeout=60,
    )
    admin = json.loads(created.stdout)
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([*cli, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{issuer}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        else:
            pytest.fail("server did not become ready: " + (tmp_path / "server.log").read_text())
        token = httpx.post(
            f"{issuer}/token", data={"grant_type": "client_credentials", "scope": "admin"},
            auth=(admin["client_id"], admin["client_secret"]), timeout=5,
        ).json()["access_token"]
        probe = httpx.get(f"{issuer}/admin/api/roles", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert probe.status_code == 200, probe.text
        result = subprocess.run(
            [
                SCHEMATHESIS, "run", f"{issuer}/admin/api/openapi.json",
                "--checks", "not_a_server_error",
                "--header", f"Authorization: Bearer {token}",
                "--max-examples", "8", "--seed", "7310", "--no-shrink",
                "--phases", "examples,coverage,fuzzing",
                "--exclude-path", "/admin/api/users/{account_id}/unlock",  # 501 until a lockout store is wired
                "--exclude-path", "/admin/api/chaos",  # its experiments answer 503 on purpose (own tests)
                "--request-timeout", "10",
            ],
            capture_output=True, text=True, timeout=420, check=False,
        )
        assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
        # The server itself logged no unhandled error.
        assert "unhandled error" not in (tmp_path / "server.log").read_text()
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
