"""cmipro_verify and certificate-bound tokens (RFC 8705 §3): a token with cnf.x5t#S256 passes only with the
certificate it is bound to (DER, PEM or URL-encoded PEM), in the library, the Starlette integration and the
Lambda authorizer example; a token without cnf behaves as before. Tokens come from a real server that takes
the client certificate from its trusted proxy's header (the test is that proxy, on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from authserver.app import build_services, create_app
from authserver.settings import load_settings
from cmipro_verify import InvalidToken, Verifier, certificate_thumbprint
from cmipro_verify.starlette import BearerAuthMiddleware, certificate_from_header, claims_of
from tests.conftest import environ_for, fast_passwords
from tests.support import certs
from tests.support.factories import make_client
from tests.verifier.conftest import AUDIENCE, _free_port

HANDLER = Path(__file__).resolve().parents[2] / "examples" / "lambda_authorizer" / "handler.py"
CA = certs.make_ca()
READER = certs.issue(CA, "gauge-reader")
THIEF = certs.issue(CA, "thief")


@pytest.fixture(scope="module")
async def issued(database_url: str, tmp_root: Path) -> AsyncIterator[tuple[str, str, str]]:
    """(issuer, a token bound to READER, an unbound token)."""
    backend = "postgres" if database_url.startswith("postgresql") else "sqlite"
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    settings = load_settings(environ_for(
        backend, database_url, tmp_root, AUTHSERVER_SERVER__ISSUER=url,
        AUTHSERVER_SECURITY__TRUSTED_PROXIES="127.0.0.1", AUTHSERVER_SECURITY__CLIENT_CERTIFICATE_HEADER="X-SSL-Client-Cert",
    ))
    server = uvicorn.Server(uvicorn.Config(create_app(settings, passwords=fast_passwords()), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="mtls-authserver", daemon=True)
    thread.start()
    for _ in range(300):
        if server.started:
            break
        await asyncio.sleep(0.05)
    services = build_services(settings, passwords=fast_passwords())
    try:
        bound = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"],
                                  token_endpoint_auth_method="tls_client_auth", tls_client_auth_subject_dn="CN=gauge-reader,O=CMIPRO,C=HN")
        plain = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"])
        async with httpx.AsyncClient(base_url=url) as http:
            data = {"grant_type": "client_credentials", "scope": "read:levels"}
            first = await http.post("/token", data={**data, "client_id": bound.client_id}, headers={"X-SSL-Client-Cert": READER.escaped})
            second = await http.post("/token", data=data, auth=(plain.client_id, plain.secret))
        assert first.status_code == 200 and second.status_code == 200, (first.text, second.text)
        yield url, first.json()["access_token"], second.json()["access_token"]
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 10)
        await services.cache.close()
        await services.engine.dispose()


async def test_verifier_checks_the_certificate_binding(issued: tuple[str, str, str]) -> None:
    issuer, bound, plain = issued
    verifier = Verifier(issuer=issuer, audience=AUDIENCE)
    try:
        for presented in (READER.der, READER.pem, READER.pem.encode(), READER.escaped):
            claims = await verifier.verify_async(bound, client_certificate=presented)
            assert claims["cnf"]["x5t#S256"] == certificate_thumbprint(READER.der)
        assert verifier.verify(bound, client_certificate=READER.der).client_id
        for stolen in (None, THIEF.der, THIEF.pem, b"", b"not a certificate", "garbage"):
            with pytest.raises(InvalidToken):
                await verifier.verify_async(bound, client_certificate=stolen)
            with pytest.raises(InvalidToken):
                verifier.verify(bound, client_certificate=stolen)
        # A token without cnf is accepted as before, with or without a certificate.
        assert (await verifier.verify_async(plain)).client_id
        assert verifier.verify(plain, client_certificate=THIEF.der).client_id
    finally:
        await verifier.aclose()


def data_api(verifier: Verifier, **options: Any) -> Starlette:
    async def levels(request: Request) -> Response:
        return JSONResponse({"for": claims_of(request).client_id})

    return Starlette(routes=[Route("/levels", levels)], middleware=[Middleware(BearerAuthMiddleware, verifier=verifier, **options)])


class WithTls:
    """A server that terminates mutual TLS and fills the ASGI TLS extension (as authserver.tls does)."""

    def __init__(self, app: Starlette, pem: str | None) -> None:
        self.app, self.pem = app, pem

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["extensions"] = {"tls": {"client_cert_chain": [self.pem] if self.pem else []}}
        await self.app(scope, receive, send)


async def test_starlette_integration_checks_the_binding(issued: tuple[str, str, str]) -> None:
    issuer, bound, plain = issued
    verifier = Verifier(issuer=issuer, audience=AUDIENCE)
    proxied = data_api(verifier, client_certificate=certificate_from_header("X-SSL-Client-Cert"))

    async def call(app: Any, token: str, headers: dict[str, str] | None = None) -> int:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://data-api") as api:
            return (await api.get("/levels", headers={"Authorization": f"Bearer {token}", **(headers or {})})).status_code

    try:
        assert await call(proxied, bound, {"X-SSL-Client-Cert": READER.escaped}) == 200
        assert await call(proxied, bound, {"X-SSL-Client-Cert": THIEF.escaped}) == 401
        assert await call(proxied, bound) == 401
        assert await call(proxied, plain) == 200
        direct = data_api(verifier)  # default: the ASGI TLS extension
        assert await call(WithTls(direct, READER.pem), bound) == 200
        assert await call(WithTls(direct, THIEF.pem), bound) == 401
        assert await call(WithTls(direct, None), bound) == 401
        assert await call(direct, bound, {"X-SSL-Client-Cert": READER.escaped}) == 401  # no header trusted by default
    finally:
        await verifier.aclose()


@pytest.fixture
def lambda_module(issued: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("CMIPRO_ISSUER", issued[0])
    monkeypatch.setenv("CMIPRO_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("CMIPRO_REQUIRED_SCOPES", "read:levels")
    spec = importlib.util.spec_from_file_location("lambda_authorizer_mtls", HANDLER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rest_event(token: str, pem: str | None) -> dict[str, Any]:
    context = {"identity": {"clientCert": {"clientCertPem": pem}}} if pem else {"identity": {}}
    return {"type": "REQUEST", "methodArn": "arn:aws:execute-api:us-east-1:1:abc/prod/GET/levels",
            "headers": {"Authorization": f"Bearer {token}"}, "requestContext": context}


def http_event(token: str, pem: str | None) -> dict[str, Any]:
    context = {"authentication": {"clientCert": {"clientCertPem": pem}}} if pem else {}
    return {"version": "2.0", "type": "REQUEST", "headers": {"authorization": f"Bearer {token}"}, "requestContext": context}


async def test_lambda_authorizer_checks_the_binding(issued: tuple[str, str, str], lambda_module: ModuleType) -> None:
    _, bound, plain = issued
    handler = lambda_module.handler

    def rest(token: str, pem: str | None) -> str:
        try:
            return str(handler(rest_event(token, pem), None)["policyDocument"]["Statement"][0]["Effect"])
        except Exception as error:  # noqa: BLE001 - API Gateway's "Unauthorized" is an exception
            return str(error)

    assert await asyncio.to_thread(rest, bound, READER.pem) == "Allow"
    assert await asyncio.to_thread(rest, bound, THIEF.pem) == "Unauthorized"
    assert await asyncio.to_thread(rest, bound, None) == "Unauthorized"
    assert await asyncio.to_thread(rest, plain, None) == "Allow"
    assert (await asyncio.to_thread(handler, http_event(bound, READER.pem), None))["isAuthorized"] is True
    assert (await asyncio.to_thread(handler, http_event(bound, THIEF.pem), None))["isAuthorized"] is False
