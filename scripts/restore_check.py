"""Restore drill: restore a PostgreSQL dump into a fresh database and prove the restored service still
verifies the tokens it issued before the backup.

    scripts/restore-check --dump authserver.dump --token "$OLD_ACCESS_TOKEN" [--token …] [--keep]

Settings come from the environment / ``--config`` as for ``authserver`` (the **same** key-encryption keys,
``security.encryption_keys``, or the same ``security.key_file`` as the backed-up server; the database URL is
replaced by the fresh one). Steps: create ``authserver_restore_<hex>``; ``pg_restore --no-owner``; migrate to
head; start the application in process against it; ``GET /jwks``; check that every old token's signature
verifies against the served JWKS and that every active signing key decrypts (the restored server can sign
new tokens); drop the database unless ``--keep``. Exit status 0 only if every check passed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


async def _check(url: str, tokens: list[str], config: str | None) -> list[str]:
    import httpx
    from asgi_lifespan import LifespanManager
    from joserfc import jwt
    from joserfc.jwk import KeySet

    from authserver.app import create_app
    from authserver.settings import load_settings

    settings = load_settings({**os.environ, "AUTHSERVER_DATABASE__URL": url}, path=config)
    app = create_app(settings)
    problems: list[str] = []
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.server.issuer) as http:
        served = await http.get("/jwks")
        if served.status_code != 200:
            return [f"/jwks answered {served.status_code}"]
        jwks = served.json()
        keys = KeySet.import_key_set(jwks)
        kids = {k["kid"] for k in jwks["keys"]}
        print(f"restored JWKS: {len(kids)} keys ({', '.join(sorted(kids))})")
        for n, token in enumerate(tokens, 1):
            try:
                decoded = jwt.decode(token, keys)
                print(f"token {n}: signature verifies (kid {decoded.header.get('kid')}, iss {decoded.claims.get('iss')})")
            except Exception as error:  # noqa: BLE001 - any failure is a failed check, reported by name
                problems.append(f"token {n}: does not verify against the restored JWKS ({type(error).__name__}: {error})")
        services = app.state.services
        for alg in settings.keys.algorithms:
            if not services.keys.can_sign(alg):
                problems.append(f"no usable {alg} signing key: wrong security.encryption_keys / key_file?")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/restore-check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dump", required=True, help="pg_dump --format=custom file")
    parser.add_argument("--token", action="append", default=[], help="a token issued before the backup (repeat)")
    parser.add_argument("--admin-dsn", default=os.environ.get("AUTHSERVER_RESTORE_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--config", help="authserver TOML settings (as --config of authserver)")
    parser.add_argument("--keep", action="store_true", help="keep the restored database")
    args = parser.parse_args(argv)

    import asyncpg

    from authserver.storage.sql.migrate import upgrade

    name = f"authserver_restore_{secrets.token_hex(4)}"
    base = args.admin_dsn.rsplit("/", 1)[0]

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(args.admin_dsn, timeout=10)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        restored = subprocess.run(["pg_restore", "--no-owner", "--no-privileges", "--dbname", f"{base}/{name}", args.dump],
                                  capture_output=True, text=True, check=False)
        if restored.returncode != 0:
            print(f"FAILED: pg_restore: {restored.stderr.strip()[-2000:]}")
            return 1
        url = "postgresql+asyncpg://" + f"{base}/{name}".split("://", 1)[1]
        upgrade(url)
        print(f"restored {args.dump} into {name} and migrated it to head")
        problems = asyncio.run(_check(url, args.token, args.config))
    finally:
        if not args.keep:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    for problem in problems:
        print(f"- {problem}")
    print("RESTORE CHECK PASSED" if not problems else "RESTORE CHECK FAILED")
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
