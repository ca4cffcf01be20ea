"""`authserver serve` terminating TLS with client certificates: a real server process, real certificates,
httpx over real TLS presenting a client certificate (RFC 8705).

The handshake verifies client certificates against server.tls_client_ca_file; the peer certificate
reaches the app as the ASGI TLS extension (authserver/tls.py). A self-signed client certificate is
accepted by listing it in the CA file (Python's ssl module has no verify callback).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt as pyjwt
import pytest
from joserfc.jwk import ECKey

from authserver.cli import main
from authserver.protocol.certificates import thumbprint
from tests.cli.test_serve import free_port
from tests.support import certs

STARTUP_TIMEOUT = 60.0


@dataclass
class Served:
    url: str
    folder: Path
    server_ca: str
    reader: certs.Issued
    other: certs.Issued
    device: certs.Issued
    stranger: certs.Issued
    expired: certs.Issued
    clients: dict[str, str]
    process: subprocess.Popen[bytes]
    log: Path

    def context(self, who: certs.Issued | None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.server_ca)
        if who is not None:
            cert, key = who.write(self.folder, f"client-{thumbprint(who.certificate)[:8]}")
            context.load_cert_chain(cert, key)
        return context

    def http(self, who: certs.Issued | None) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, verify=self.context(who))


def create_client(*argv: str) -> str:
    """`authserver client create … --json` in process (the environment names the test's database)."""
    import contextlib
    import io

    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        assert main(["client", "create", "--type", "confidential", "--grant", "client_credentials", "--json", *argv]) == 0
    return str(json.loads(output.getvalue())["client_id"])


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Served]:
    port = free_port()
    server_ca, client_ca, stranger_ca = certs.make_ca("Server CA"), certs.make_ca("Client CA"), certs.make_ca("Stranger CA")
    server_cert, server_key = certs.server_certificate(server_ca).write(tmp_path, "server")
    server_ca_file, _ = server_ca.write(tmp_path, "server-ca")
    device = certs.self_signed("device-7")
    (tmp_path / "client-cas.pem").write_text(client_ca.pem + device.pem)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHSERVER_")}
    settings = {
        "AUTHSERVER_SERVER__TLS_CERTFILE": server_cert,
        "AUTHSERVER_SERVER__TLS_KEYFILE": server_key,
        "AUTHSERVER_SERVER__TLS_CLIENT_CA_FILE": str(tmp_path / "client-cas.pem"),
        "AUTHSERVER_SERVER__PORT": str(port),
        "AUTHSERVER_SERVER__DEMO": "false",
        "AUTHSERVER_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}",
        "AUTHSERVER_SECURITY__KEY_FILE": str(tmp_path / "secrets.json"),
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    assert main(["migrate"]) == 0
    jwks = tmp_path / "device.json"
    jwks.write_text(json.dumps({"keys": [{**ECKey.import_key(device.key).as_dict(private=False), "kid": "device"}]}))
    url = f"https://127.0.0.1:{port}"
    clients = {
        "reader": create_client("--name", "Gauges", "--auth-method", "tls_client_auth", "--tls-subject-dn", "CN=gauge-reader,O=CMIPRO,C=HN",
                                "--scope", "read:levels", "--scope", "admin", "--audience", url),
        "device": create_client("--name", "Device", "--auth-method", "self_signed_tls_client_auth", "--jwks-file", str(jwks),
                                "--scope", "read:levels", "--audience", "https://api.cmipro.example"),
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "authserver", "serve"], cwd=tmp_path, env={**env, **settings},
            stdout=output, stderr=subprocess.STDOUT,
        )
    try:
        yield Served(
            url=url, folder=tmp_path, server_ca=server_ca_file,
            reader=certs.issue(client_ca, "gauge-reader"), other=certs.issue(client_ca, "someone-else"), device=device,
            stranger=certs.issue(stranger_ca, "gauge-reader"), expired=certs.expired(client_ca, "gauge-reader"),
            clients=clients, process=process, log=log,
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


async def wait_ready(served: Served) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT
    async with served.http(None) as http:
        while loop.time() < deadline:
            if served.process.poll() is not None:
                raise AssertionError(f"serve exited: {served.log.read_text()[-3000:]}")
            try:
                response = await http.get("/.well-known/openid-configuration", timeout=2)
                if response.status_code == 200:
                    return dict(response.json())
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"no discovery within {STARTUP_TIMEOUT} s: {served.log.read_text()[-3000:]}")


async def token(served: Served, who: certs.Issued, client: str, scope: str = "read:levels") -> httpx.Response:
    async with served.http(who) as http:
        return await http.post("/token", data={"grant_type": "client_credentials", "client_id": served.clients[client], "scope": scope})


async def test_serve_with_client_certificates(served: Served) -> None:
    metadata = await wait_ready(served)
    assert metadata["issuer"] == served.url
    assert metadata["mtls_endpoint_aliases"]["token_endpoint"] == f"{served.url}/token"  # type: ignore[index]
    assert metadata["tls_client_certificate_bound_access_tokens"] is True

    # tls_client_auth over real TLS: the handshake verified the chain, the subject DN matches.
    issued = await token(served, served.reader, "reader")
    assert issued.status_code == 200, issued.text
    claims = pyjwt.decode(issued.json()["access_token"], options={"verify_signature": False})
    assert claims["cnf"] == {"x5t#S256": thumbprint(served.reader.certificate)}
    # Another certificate of the same CA with another subject; no certificate at all (it is optional).
    assert (await token(served, served.other, "reader")).status_code == 401
    async with served.http(None) as http:
        anonymous = await http.post("/token", data={"grant_type": "client_credentials", "client_id": served.clients["reader"]})
        assert anonymous.status_code == 401 and anonymous.json()["error"] == "invalid_client"
    # self_signed_tls_client_auth: the registered key (the certificate is trusted through the CA file).
    device = await token(served, served.device, "device")
    assert device.status_code == 200, device.text

    # A certificate of another CA, or an expired one, never completes the handshake.
    for refused in (served.stranger, served.expired):
        with pytest.raises(httpx.TransportError):
            await token(served, refused, "reader")

    # The bound admin token works with its certificate only.
    admin = (await token(served, served.reader, "reader", scope="admin")).json()["access_token"]
    headers = {"Authorization": f"Bearer {admin}"}
    async with served.http(served.reader) as http:
        assert (await http.get("/admin/api/clients", headers=headers)).status_code == 200
    for thief in (served.other, None):
        async with served.http(thief) as http:
            stolen = await http.get("/admin/api/clients", headers=headers)
            assert stolen.status_code == 401 and 'error="invalid_token"' in stolen.headers["www-authenticate"]
