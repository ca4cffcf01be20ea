"""A live authserver (uvicorn on a free loopback port, in a background thread) and Debian's headless Chromium.

One server per backend for the session: PostgreSQL + Redis and SQLite + the in-process cache, on the same
databases as the rest of the suite. Screenshots go to ``test-artifacts/`` (git-ignored).
"""

from __future__ import annotations

import html
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import uvicorn
from playwright.async_api import Browser, BrowserContext, async_playwright

from authserver.app import build_services, create_app
from authserver.services import Services
from authserver.settings import load_settings
from tests.conftest import environ_for, fast_passwords

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass
class LiveServer:
    url: str
    backend: str
    services: Services  # bound to the test loop: for setting up data, not shared with the server's loop


def _serve_in_thread(app: object, sock: socket.socket) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", access_log=False, lifespan="on", ws="none",
        server_header=False, timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="live-authserver")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("live server did not start")
        time.sleep(0.02)
    return server, thread


def loopback_socket() -> tuple[socket.socket, str]:
    """A bound socket on a free loopback port for a live server, and its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(scope="session")
async def live_server(database_url: str, tmp_root: Path) -> AsyncIterator[LiveServer]:
    backend = "postgres" if database_url.startswith("postgresql") else "sqlite"
    sock, url = loopback_socket()
    settings = load_settings(environ_for(backend, database_url, tmp_root, AUTHSERVER_SERVER__ISSUER=url))
    server, thread = _serve_in_thread(create_app(settings, passwords=fast_passwords()), sock)
    services = build_services(settings, passwords=fast_passwords())
    try:
        yield LiveServer(url, backend, services)
    finally:
        await services.cache.close()
        await services.engine.dispose()
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@dataclass
class ClientApp:
    """A third-party web app on its own origin: records every request that reaches ``/cb``, and serves
    ``/frame?src=…``, a page that embeds ``src`` in an iframe (a clickjacking attempt)."""

    url: str
    hits: list[str] = field(default_factory=list)

    @property
    def callback(self) -> str:
        return f"{self.url}/cb"


def _client_app_handler(app: ClientApp) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            parts = urlsplit(self.path)
            if parts.path == "/cb":
                app.hits.append(f"{app.url}{self.path}")
                body = "<!doctype html><title>client</title><p>client app</p>"
            elif parts.path == "/frame":
                src = html.escape(parse_qs(parts.query).get("src", [""])[0], quote=True)
                body = f'<!doctype html><title>frame</title><iframe id="victim" src="{src}" width="600" height="400"></iframe>'
            else:
                self.send_error(404)
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


@pytest.fixture(scope="session")
def client_app_server() -> Iterator[ClientApp]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    app = ClientApp(url=f"http://127.0.0.1:{httpd.server_address[1]}")
    httpd.RequestHandlerClass = _client_app_handler(app)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="client-app")
    thread.start()
    try:
        yield app
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def client_app(client_app_server: ClientApp) -> ClientApp:
    """The session's client app with an empty record for this test."""
    client_app_server.hits.clear()
    return client_app_server


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh profile (no cookies) whose Accept-Language matches no supported language: pages fall back to Spanish."""
    ctx = await browser.new_context(locale="de-DE")
    ctx.set_default_timeout(10_000)
    try:
        yield ctx
    finally:
        await ctx.close()
