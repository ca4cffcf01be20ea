"""The processes under test: authserver, the bare-Starlette ceiling and the node-oidc-provider peer.

Each runs as one process pinned to CPU 0 (the load generator gets CPU 1), so its CPU time read from
/proc/<pid>/stat is the cost of the requests it served.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PEER_DIR = Path(__file__).resolve().parent / "peer"
PG_ADMIN_DSN = os.environ.get("AUTHSERVER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("AUTHSERVER_BENCH_REDIS", "redis://127.0.0.1:6379/0")
SERVER_CPU = "0"
API = "https://api.cmipro.example"
REDIRECT_URI = "https://app.example/callback"
PASSWORD = "correct horse battery staple"
USERNAME = "bench-user"
API_SCOPES = ["read:stations", "read:levels", "read:alerts", "write:alerts"]
ALL_SCOPES = ["openid", "profile", "email", "offline_access", *API_SCOPES]
# As `authserver serve` runs it (proxy_headers=False, no Server header), access log off.
UVICORN_FLAGS = [
    "--http", "httptools", "--loop", "uvloop", "--no-access-log", "--no-server-header", "--no-proxy-headers",
    "--log-level", "warning",
]
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(command: list[str]) -> list[str]:
    """Pin to the server core when the machine has two or more (taskset from util-linux)."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", SERVER_CPU, *command]
    return command


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """User + system CPU time of one thread of the process (the main thread: ``tid == pid``)."""
    with open(f"/proc/{pid}/task/{tid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mb(pid: int) -> dict[str, float]:
    """Resident set now (VmRSS) and at its peak (VmHWM), in MB."""
    values: dict[str, float] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values["rss_mb" if name == "VmRSS" else "peak_rss_mb"] = int(rest.split()[0]) / 1024
    return values


@dataclass
class Credentials:
    """What the workloads need to talk to one server."""

    service_id: str
    service_secret: str
    web_id: str
    web_secret: str
    introspector_id: str
    introspector_secret: str
    username: str = USERNAME
    password: str = PASSWORD
    # The public SPA client of W8 (DPoP-bound refresh, RFC 9449).
    spa_id: str = "bench-spa"
    # Token the introspection workload presents (set after start-up).
    introspect_token: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # The server's issuer: DPoP proofs name URLs under it (htu), whatever address the load generator dials.
    issuer: str = ""

    @staticmethod
    def basic(client_id: str, secret: str) -> str:
        return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def pkjwt_key() -> dict[str, Any]:
    """The W7 client's key pair (ES256), as a private JWK: the server gets its public half."""
    from joserfc.jwk import ECKey

    return ECKey.generate_key("P-256", {"kid": "bench-pkjwt-1", "alg": "ES256"}).as_dict(private=True)


def public_jwks(private_jwk: dict[str, Any]) -> dict[str, Any]:
    from joserfc.jwk import ECKey

    return {"keys": [ECKey.import_key(private_jwk).as_dict(private=False)]}


class Server:
    name = "server"
    process: subprocess.Popen[bytes] | None = None
    base_url = ""
    credentials: Credentials | None = None
    ready_path = "/"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.log_path = workdir / f"{self.name}.log"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _spawn(self, command: list[str], env: dict[str, str]) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self.process = subprocess.Popen(pinned(command), env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log_path}\n{self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.base_url + self.ready_path, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become ready: see {self.log_path}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Baseline(Server):
    name = "baseline"
    ready_path = "/json"

    def start(self) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "uvicorn", "bench.baseline_app:app", "--host", "127.0.0.1", "--port", str(port), *UVICORN_FLAGS]
        self._spawn(command, dict(os.environ))
        self._wait_ready()


class Ours(Server):
    """authserver on PostgreSQL + Redis (or SQLite + the in-process cache in --quick smoke runs)."""

    name = "authserver"
    ready_path = "/readyz"

    def __init__(self, workdir: Path, *, backend: str, extra_env: dict[str, str] | None = None, staging: bool = False) -> None:
        super().__init__(workdir)
        self.backend = backend
        # Staging: PostgreSQL + Redis but production=false (chaos experiments are refused in production).
        self.staging = staging
        self.extra_env = extra_env or {}
        self.run_id = secrets.token_hex(4)
        self.database = f"authserver_bench_{self.run_id}"
        self.key_prefix = f"authserver-bench-{self.run_id}:"
        self.env: dict[str, str] = {}
        self.settings_note = ""

    def _environment(self, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
        env.update({
            "AUTHSERVER_SERVER__DEMO": "false",
            "AUTHSERVER_SERVER__HOST": "127.0.0.1",
            "AUTHSERVER_SERVER__PORT": str(port),
            "AUTHSERVER_SECURITY__ENCRYPTION_KEYS": json.dumps({"bench": base64.b64encode(secrets.token_bytes(32)).decode()}),
            "AUTHSERVER_SECURITY__ACTIVE_ENCRYPTION_KEY": "bench",
        })
        # The load comes from one address and a handful of clients: the abuse limits (which would answer
        # 429 within a second) are lifted so the benchmark measures the work, not the throttle.
        env.update({
            f"AUTHSERVER_ABUSE__{name.upper()}": "100000000"
            for name in (
                "ip_failures", "client_failures", "client_ip_failures", "authorize_per_ip", "login_per_ip",
                "mfa_per_ip", "token_per_client", "introspection_per_client", "revocation_per_client",
                "userinfo_per_token",
            )
        })
        if self.backend == "postgres":
            # Production mode needs an https issuer; the issuer is only an identifier here (the
            # bench talks plain http to 127.0.0.1, as a TLS-terminating proxy would).
            env.update({
                "AUTHSERVER_SERVER__PRODUCTION": "true",
                "AUTHSERVER_SERVER__ISSUER": "https://auth.bench.invalid",
                "AUTHSERVER_DATABASE__URL": f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.database}",
                "AUTHSERVER_CACHE__URL": REDIS_URL,
                "AUTHSERVER_CACHE__KEY_PREFIX": self.key_prefix,
            })
            self.settings_note = "production=true, https issuer (identifier only), PostgreSQL + Redis"
            if self.staging:
                env.update({"AUTHSERVER_SERVER__PRODUCTION": "false", "AUTHSERVER_SERVER__ISSUER": f"http://127.0.0.1:{port}"})
                self.settings_note = "staging (production=false), PostgreSQL + Redis"
        else:
            env.update({
                "AUTHSERVER_SERVER__ISSUER": f"http://127.0.0.1:{port}",
                "AUTHSERVER_DATABASE__URL": f"sqlite+aiosqlite:///{self.workdir / 'bench.db'}",
                "AUTHSERVER_CACHE__URL": "memory://",
            })
            self.settings_note = "production=false, SQLite + in-process cache (smoke run only)"
        env.update(self.extra_env)
        if self.extra_env:
            self.settings_note += "; " + " ".join(f"{k}={v}" for k, v in sorted(self.extra_env.items()))
        return env

    def start(self) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        self.env = self._environment(port)
        if self.backend == "postgres":
            asyncio.run(self._create_database())
        from authserver.storage.sql.migrate import upgrade

        upgrade(self.env["AUTHSERVER_DATABASE__URL"])
        self.credentials = asyncio.run(self._provision())
        command = [
            # AUTHSERVER_BENCH_APP names another factory (module:function), e.g. one that switches a part
            # off to measure what it costs (--env AUTHSERVER_BENCH_APP=... --env PYTHONPATH=...).
            sys.executable, "-m", "uvicorn", self.env.get("AUTHSERVER_BENCH_APP", "authserver.cli:app_from_environment"), "--factory",
            "--host", "127.0.0.1", "--port", str(port), *UVICORN_FLAGS,
        ]
        self._spawn(command, self.env)
        self._wait_ready()

    async def _create_database(self) -> None:
        import asyncpg

        connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await connection.execute(f'CREATE DATABASE "{self.database}"')
        finally:
            await connection.close()

    async def _provision(self) -> Credentials:
        """Clients and a user through the stores, exactly as `authserver client create` / `user create` do."""
        from authserver.app import build_services
        from authserver.settings import load_settings

        services = build_services(load_settings(self.env))
        try:
            await services.keys.ensure_active_keys()
            service, service_secret = await services.clients.create(
                client_id="bench-service", name="Bench service", client_type="confidential", redirect_uris=[],
                grant_types=["client_credentials"], scopes=API_SCOPES, audience=[API],
            )
            web, web_secret = await services.clients.create(
                client_id="bench-web", name="Bench web", client_type="confidential", redirect_uris=[REDIRECT_URI],
                grant_types=["authorization_code", "refresh_token"], scopes=ALL_SCOPES, audience=[API], first_party=True,
            )
            await services.clients.create(
                client_id="bench-spa", name="Bench SPA (DPoP)", client_type="public", redirect_uris=[REDIRECT_URI],
                grant_types=["authorization_code", "refresh_token"], scopes=ALL_SCOPES, audience=[API], first_party=True,
                dpop_bound_access_tokens=True,
            )
            introspector, introspector_secret = await services.clients.create(
                client_id="bench-introspector", name="Bench API", client_type="confidential", redirect_uris=[],
                grant_types=[], scopes=[], audience=[API], can_introspect=True,
            )
            # W7: client credentials with private_key_jwt (RFC 7523), ES256, keys registered inline.
            pkjwt_private = pkjwt_key()
            await services.clients.create(
                client_id="bench-pkjwt", name="Bench signed service", client_type="confidential", redirect_uris=[],
                grant_types=["client_credentials"], scopes=API_SCOPES, audience=[API], token_endpoint_auth_method="private_key_jwt",
                jwks=public_jwks(pkjwt_private), token_endpoint_auth_signing_alg="ES256",
            )
            admin, admin_secret = await services.clients.create(
                client_id="bench-admin", name="Bench operator", client_type="confidential", redirect_uris=[],
                grant_types=["client_credentials"], scopes=["admin"], audience=[],
            )
            await services.accounts.create(
                username=USERNAME, password_hash=await services.passwords.hash(PASSWORD),
                email="bench@example.org", email_verified=True, name="Bench User", roles=["free_user"],
            )
        finally:
            await services.cache.close()
            await services.engine.dispose()
        assert service_secret and web_secret and introspector_secret
        return Credentials(service.client_id, service_secret, web.client_id, web_secret, introspector.client_id, introspector_secret,
                           extra={"admin": (admin.client_id, admin_secret),
                                  "pkjwt": {"client_id": "bench-pkjwt", "key": pkjwt_private, "issuer": self.env["AUTHSERVER_SERVER__ISSUER"]}},
                           issuer=self.env["AUTHSERVER_SERVER__ISSUER"])

    def stop(self) -> None:
        super().stop()
        if self.backend == "postgres":
            asyncio.run(self._cleanup())

    async def _cleanup(self) -> None:
        import asyncpg
        from redis.asyncio import Redis

        connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        finally:
            await connection.close()
        redis = Redis.from_url(REDIS_URL)
        try:
            async for key in redis.scan_iter(match=f"{self.key_prefix}*", count=500):
                await redis.delete(key)
        finally:
            await redis.aclose()


class Peer(Server):
    """node-oidc-provider 9.x from bench/peer (in-memory adapter, one node process)."""

    name = "oidc-provider"
    ready_path = "/.well-known/openid-configuration"

    @staticmethod
    def available() -> str | None:
        """None if the peer can run, else why not."""
        if not shutil.which("node"):
            return "node is not installed"
        if not (PEER_DIR / "node_modules" / "oidc-provider").is_dir():
            return "bench/peer/node_modules missing (run `npm ci` in bench/peer)"
        return None

    def start(self) -> None:
        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        secrets_ = {name: secrets.token_urlsafe(32) for name in ("service", "web", "introspector", "opaque")}
        pkjwt_private = pkjwt_key()
        common = {"token_endpoint_auth_method": "client_secret_basic", "id_token_signed_response_alg": "ES256"}
        clients = [
            {"client_id": "bench-service", "client_secret": secrets_["service"], "grant_types": ["client_credentials"],
             "redirect_uris": [], "response_types": [], "scope": " ".join(API_SCOPES), **common},
            {"client_id": "bench-web", "client_secret": secrets_["web"], "grant_types": ["authorization_code", "refresh_token"],
             "redirect_uris": [REDIRECT_URI], "response_types": ["code"], "scope": " ".join(ALL_SCOPES), **common},
            {"client_id": "bench-spa", "grant_types": ["authorization_code", "refresh_token"], "redirect_uris": [REDIRECT_URI],
             "response_types": ["code"], "scope": " ".join(ALL_SCOPES), "token_endpoint_auth_method": "none",
             "id_token_signed_response_alg": "ES256", "dpop_bound_access_tokens": True},
            {"client_id": "bench-introspector", "client_secret": secrets_["introspector"], "grant_types": [],
             "redirect_uris": [], "response_types": [], **common},
            {"client_id": "bench-opaque", "client_secret": secrets_["opaque"], "grant_types": ["client_credentials"],
             "redirect_uris": [], "response_types": [], "scope": " ".join(API_SCOPES), **common},
            # W7: the same private_key_jwt client as authserver's (ES256, inline jwks).
            {"client_id": "bench-pkjwt", "grant_types": ["client_credentials"], "redirect_uris": [], "response_types": [],
             "scope": " ".join(API_SCOPES), "token_endpoint_auth_method": "private_key_jwt", "jwks": public_jwks(pkjwt_private),
             "token_endpoint_auth_signing_alg": "ES256", "id_token_signed_response_alg": "ES256"},
        ]
        config = {
            "port": port, "issuer": self.base_url, "api": API, "opaque_client": "bench-opaque",
            "clients": clients, "users": [{"username": USERNAME, "password": PASSWORD}],
        }
        env = dict(os.environ, PEER_CONFIG=json.dumps(config), NODE_ENV="production")
        self._spawn(["node", str(PEER_DIR / "server.js")], env)
        self._wait_ready()
        self.credentials = Credentials(
            "bench-service", secrets_["service"], "bench-web", secrets_["web"], "bench-introspector", secrets_["introspector"],
            extra={"opaque_id": "bench-opaque", "opaque_secret": secrets_["opaque"],
                   "pkjwt": {"client_id": "bench-pkjwt", "key": pkjwt_private, "issuer": self.base_url}},
            issuer=self.base_url,
        )


def make_workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="authserver-bench-"))
