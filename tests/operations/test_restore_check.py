"""The restore drill (scripts/restore-check): a pg_dump of a running server's database, restored into a fresh
database, serves a JWKS that verifies the tokens issued before the backup, and can sign again, given the
same key-encryption key; with another key it says so and fails."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from authserver.storage.sql.migrate import upgrade
from tests.conftest import create_pg_database, drop_pg_database, environ_for
from tests.support.apps import running_app
from tests.support.factories import make_client

ROOT = Path(__file__).resolve().parents[2]


async def test_a_restored_dump_serves_the_old_tokens_jwks(tmp_path: Path) -> None:
    name = await create_pg_database()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    try:
        await asyncio.to_thread(upgrade, url)
        async with running_app(url, tmp_path) as (_app, services, http):
            client = await make_client(services, grant_types=["client_credentials"])
            answer = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret or ""))
            assert answer.status_code == 200, answer.text
            old_token = answer.json()["access_token"]
        dump = tmp_path / "authserver.dump"
        subprocess.run(["pg_dump", "--format=custom", "--file", str(dump), f"postgresql://postgres@127.0.0.1:5432/{name}"], check=True, timeout=60)
    finally:
        await drop_pg_database(name)  # the backed-up server is gone: only the dump and the key file remain

    def drill(key_file: Path) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
        env.update(environ_for("postgres", url, tmp_path, AUTHSERVER_SECURITY__KEY_FILE=str(key_file)))
        return subprocess.run([str(ROOT / "scripts/restore-check"), "--dump", str(dump), "--token", old_token],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)

    passed = await asyncio.to_thread(drill, tmp_path / "secrets.json")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "token 1: signature verifies" in passed.stdout and "RESTORE CHECK PASSED" in passed.stdout
    wrong_key = await asyncio.to_thread(drill, tmp_path / "another-secrets.json")
    assert wrong_key.returncode == 1 and "signing key" in wrong_key.stdout, wrong_key.stdout + wrong_key.stderr
