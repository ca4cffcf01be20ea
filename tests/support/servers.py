"""Real server processes (`python -m authserver serve`) on free ports, for multi-instance and crash tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "authserver", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        async with httpx.AsyncClient() as client:
            while asyncio.get_running_loop().time() < deadline:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise AssertionError(f"server on {self.port} exited: {self.log_path.read_text()[-2000:]}")
                try:
                    if (await client.get(f"{self.url}/readyz", timeout=1)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise AssertionError(f"server on {self.port} not ready: {self.log_path.read_text()[-2000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing — a crash."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {port}")


@dataclass
class RedisServer:
    """A throwaway redis-server of the test's own (no persistence) on a fixed port, so it can be stopped and
    started again empty, as a real Redis restart is. Never the machine's shared Redis."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        """SIGKILL: Redis is gone at once, with everything it held."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


def cluster_settings_env(*, issuer: str, database_url: str, redis_url: str, key_prefix: str) -> dict[str, str]:
    """The settings every instance of a test cluster shares: one issuer, one database, one Redis prefix, one
    encryption key. The test is the load balancer: it names the client address in X-Forwarded-For."""
    return {
        "AUTHSERVER_SERVER__ISSUER": issuer,
        "AUTHSERVER_SERVER__COOKIE_SECURE": "false",
        "AUTHSERVER_SERVER__DEMO": "false",
        "AUTHSERVER_DATABASE__URL": database_url,
        "AUTHSERVER_CACHE__URL": redis_url,
        "AUTHSERVER_CACHE__KEY_PREFIX": key_prefix,
        "AUTHSERVER_SECURITY__ENCRYPTION_KEYS": '{"k1": "' + secrets.token_urlsafe(32) + '"}',
        "AUTHSERVER_SECURITY__ACTIVE_ENCRYPTION_KEY": "k1",
        "AUTHSERVER_SECURITY__TRUSTED_PROXIES": "127.0.0.1",
    }


def server_env(settings_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    env.update(settings_env)
    env.setdefault("AUTHSERVER_DATABASE__MIGRATE_ON_START", "false")
    return env
