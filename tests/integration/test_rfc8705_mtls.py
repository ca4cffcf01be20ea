"""RFC 8705 through the app, behind a TLS-terminating proxy that forwards the client certificate in a header.

The test is the proxy: requests come from 10.1.2.3 (security.trusted_proxies) with X-SSL-Client-Cert
(the URL-encoded PEM nginx's $ssl_client_escaped_cert sends) and X-SSL-Client-Verify ($ssl_client_verify);
the same headers from any other address are ignored. Certificates are real (tests/support/certs.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from asgi_lifespan import LifespanManager
from joserfc.jwk import ECKey
from starlette.applications import Starlette

from authserver.app import create_app
from authserver.protocol.certificates import thumbprint
from authserver.services import Services
from authserver.settings import load_settings
from tests.conftest import ISSUER, environ_for, fast_passwords
from tests.support import certs
from tests.support.factories import AppClient, authorize, make_client, make_user, redeem

PROXY = "10.1.2.3"
OUTSIDER = "203.0.113.7"
CA = certs.make_ca()
READER = certs.issue(CA, "gauge-reader", sans=certs.client_sans())
OTHER = certs.issue(CA, "someone-else")
DEVICE = certs.self_signed("device-7")


@pytest.fixture
async def mtls_app(backend: str, database_url: str, tmp_root: Path) -> AsyncIterator[Starlette]:
    settings = load_settings(environ_for(
        backend, database_url, tmp_root,
        AUTHSERVER_SECURITY__TRUSTED_PROXIES=PROXY,
        AUTHSERVER_SECURITY__CLIENT_CERTIFICATE_HEADER="X-SSL-Client-Cert",
        AUTHSERVER_SECURITY__CLIENT_CERTIFICATE_VERIFY_HEADER="X-SSL-Client-Verify",
    ))
    application = create_app(settings, passwords=fast_passwords())
    async with LifespanManager(application):
        yield application


@pytest.fixture
def services(mtls_app: Starlette) -> Services:
    services: Services = mtls_app.state.services
    return services


def via(app: Starlette, address: str = PROXY, cert: certs.Issued | None = None, verify: str = "SUCCESS") -> httpx.AsyncClient:
    headers = {"X-SSL-Client-Cert": cert.escaped, "X-SSL-Client-Verify": verify} if cert else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 50000)), base_url=ISSUER, headers=headers
    )


async def tls_client(services: Services, **extra: Any) -> AppClient:
    values: dict[str, Any] = {"token_endpoint_auth_method": "tls_client_auth",
                              "tls_client_auth_subject_dn": "CN=gauge-reader,O=CMIPRO,C=HN"}
    values.update(extra)
    return await make_client(services, **values)


async def client_credentials(http: httpx.AsyncClient, client_id: str, scope: str = "read:levels") -> httpx.Response:
    return await http.post("/token", data={"grant_type": "client_credentials", "client_id": client_id, "scope": scope})


def claims(token: str) -> dict[str, Any]:
    return dict(pyjwt.decode(token, options={"verify_signature": False}))


async def test_tls_client_auth_issues_a_certificate_bound_token(mtls_app: Starlette, services: Services) -> None:
    client = await tls_client(services)
    assert client.secret is None
    async with via(mtls_app, cert=READER) as http:
        response = await client_credentials(http, client.client_id)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert claims(body["access_token"])["cnf"] == {"x5t#S256": thumbprint(READER.certificate)}


@pytest.mark.parametrize("name", [
    {"tls_client_auth_san_dns": "gauges.cmipro.example"},
    {"tls_client_auth_san_uri": "https://gauges.cmipro.example/client"},
    {"tls_client_auth_san_ip": "192.0.2.10"},
    {"tls_client_auth_san_email": "ops@cmipro.example"},
])
async def test_each_san_type_authenticates(mtls_app: Starlette, services: Services, name: dict[str, str]) -> None:
    client = await tls_client(services, tls_client_auth_subject_dn=None, **name)
    async with via(mtls_app, cert=READER) as http:
        assert (await client_credentials(http, client.client_id)).status_code == 200
    async with via(mtls_app, cert=OTHER) as http:
        assert (await client_credentials(http, client.client_id)).status_code == 401


async def test_refusals_are_invalid_client(mtls_app: Starlette, services: Services) -> None:
    client = await tls_client(services)
    cases = [
        via(mtls_app, cert=OTHER),  # another subject
        via(mtls_app, cert=READER, verify="FAILED:unable to verify the first certificate"),  # proxy did not verify it
        via(mtls_app, cert=READER, address=OUTSIDER),  # the header from anyone but the proxy is ignored
        via(mtls_app),  # no certificate
    ]
    for http in cases:
        async with http:
            response = await client_credentials(http, client.client_id)
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "invalid_client"
    async with via(mtls_app, cert=READER) as http:  # a secret is not how this client authenticates
        response = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, "cs_x"))
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"


async def test_a_malformed_certificate_header_is_400(mtls_app: Starlette, services: Services) -> None:
    client = await tls_client(services)
    for value in ("garbage", "%ff%fe", READER.escaped[:200]):
        async with via(mtls_app) as http:
            response = await http.post(
                "/token", data={"grant_type": "client_credentials", "client_id": client.client_id},
                headers={"X-SSL-Client-Cert": value, "X-SSL-Client-Verify": "SUCCESS"},
            )
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"


async def test_self_signed_tls_client_auth_matches_the_registered_key(mtls_app: Starlette, services: Services) -> None:
    jwk = ECKey.import_key(DEVICE.key).as_dict(private=False)
    client = await make_client(services, token_endpoint_auth_method="self_signed_tls_client_auth", jwks={"keys": [jwk]})
    # Self-signed: no chain for the proxy to verify (nginx ssl_verify_client optional_no_ca), none needed.
    async with via(mtls_app, cert=DEVICE, verify="FAILED:self-signed certificate") as http:
        response = await client_credentials(http, client.client_id)
        assert response.status_code == 200, response.text
        assert claims(response.json()["access_token"])["cnf"]["x5t#S256"] == thumbprint(DEVICE.certificate)
    async with via(mtls_app, cert=certs.self_signed("device-7")) as http:  # same name, another key
        assert (await client_credentials(http, client.client_id)).status_code == 401


async def test_bound_tokens_for_a_secret_client_need_a_certificate(mtls_app: Starlette, services: Services) -> None:
    bound = await make_client(services, tls_client_certificate_bound_access_tokens=True)
    plain = await make_client(services)
    data = {"grant_type": "client_credentials", "scope": "read:levels"}
    async with via(mtls_app, cert=OTHER) as http:
        response = await http.post("/token", data=data, auth=(bound.client_id, bound.secret))
        assert claims(response.json()["access_token"])["cnf"]["x5t#S256"] == thumbprint(OTHER.certificate)
        # A client that asked for nothing gets a bearer token, certificate or not.
        response = await http.post("/token", data=data, auth=(plain.client_id, plain.secret))
        assert "cnf" not in claims(response.json()["access_token"])
    async with via(mtls_app) as http:
        response = await http.post("/token", data=data, auth=(bound.client_id, bound.secret))
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_stolen_bound_token_is_refused_at_userinfo(mtls_app: Starlette, services: Services) -> None:
    client = await tls_client(services)
    user = await make_user(services)
    async with via(mtls_app, cert=READER) as http:
        params, verifier = await authorize(http, client, user, scope="openid offline_access")
        tokens = await redeem(http, client, params["code"], verifier)
        assert tokens.status_code == 200, tokens.text
        access = tokens.json()["access_token"]
        auth = {"Authorization": f"Bearer {access}"}
        assert (await http.get("/userinfo", headers=auth)).status_code == 200
        refreshed = await http.post("/token", data={
            "grant_type": "refresh_token", "refresh_token": tokens.json()["refresh_token"], "client_id": client.client_id,
        })
        assert claims(refreshed.json()["access_token"])["cnf"]["x5t#S256"] == thumbprint(READER.certificate)
    for http in (via(mtls_app), via(mtls_app, cert=OTHER), via(mtls_app, cert=READER, address=OUTSIDER)):
        async with http:
            response = await http.get("/userinfo", headers=auth)
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    async with via(mtls_app) as http:  # the proxy forwarding garbage: a 400, never a 500
        response = await http.get("/userinfo", headers={**auth, "X-SSL-Client-Cert": "garbage"})
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_stolen_bound_admin_token_is_refused(mtls_app: Starlette, services: Services) -> None:
    admin = await tls_client(services, scopes=["admin"], audience=[ISSUER])
    async with via(mtls_app, cert=READER) as http:
        token = (await client_credentials(http, admin.client_id, scope="admin")).json()["access_token"]
        assert (await http.get("/admin/api/clients", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    async with via(mtls_app, cert=OTHER) as http:
        assert (await http.get("/admin/api/clients", headers={"Authorization": f"Bearer {token}"})).status_code == 401


async def test_introspection_returns_cnf_and_mtls_clients_revoke(mtls_app: Starlette, services: Services) -> None:
    client = await tls_client(services)
    resource = await make_client(services, can_introspect=True, audience=["https://api.cmipro.example"])
    async with via(mtls_app, cert=READER) as http:
        token = (await client_credentials(http, client.client_id)).json()["access_token"]
    async with via(mtls_app) as http:
        body = (await http.post("/introspect", data={"token": token}, auth=(resource.client_id, resource.secret))).json()
        assert body["active"] is True and body["cnf"] == {"x5t#S256": thumbprint(READER.certificate)}
        # /revoke authenticates the client the same way: without its certificate, nothing.
        refused = await http.post("/revoke", data={"token": token, "client_id": client.client_id})
        assert refused.status_code == 401
    async with via(mtls_app, cert=READER) as http:
        assert (await http.post("/revoke", data={"token": token, "client_id": client.client_id})).status_code == 200
    async with via(mtls_app) as http:
        body = (await http.post("/introspect", data={"token": token}, auth=(resource.client_id, resource.secret))).json()
        assert body == {"active": False}


async def test_discovery_advertises_mtls(mtls_app: Starlette) -> None:
    async with via(mtls_app) as http:
        metadata = (await http.get("/.well-known/openid-configuration")).json()
    assert metadata["tls_client_certificate_bound_access_tokens"] is True
    for name in ("token_endpoint_auth_methods_supported", "revocation_endpoint_auth_methods_supported",
                 "introspection_endpoint_auth_methods_supported"):
        assert {"tls_client_auth", "self_signed_tls_client_auth"} <= set(metadata[name])
    assert metadata["mtls_endpoint_aliases"]["token_endpoint"] == f"{ISSUER}/token"


async def test_discovery_without_mtls_advertises_none_of_it(http: httpx.AsyncClient) -> None:
    metadata = (await http.get("/.well-known/openid-configuration")).json()
    assert "mtls_endpoint_aliases" not in metadata and "tls_client_certificate_bound_access_tokens" not in metadata
    assert "tls_client_auth" not in metadata["token_endpoint_auth_methods_supported"]


async def test_without_a_verify_header_the_proxy_vouches_for_every_certificate(
    backend: str, database_url: str, tmp_root: Path
) -> None:
    settings = load_settings(environ_for(
        backend, database_url, tmp_root, AUTHSERVER_SECURITY__TRUSTED_PROXIES=PROXY,
        AUTHSERVER_SECURITY__CLIENT_CERTIFICATE_HEADER="X-SSL-Client-Cert",
    ))
    application = create_app(settings, passwords=fast_passwords())
    async with LifespanManager(application):
        client = await tls_client(application.state.services)
        async with via(application, cert=READER, verify="FAILED:ignored, no verify header is configured") as http:
            assert (await client_credentials(http, client.client_id)).status_code == 200
        async with via(application, cert=READER, address=OUTSIDER) as http:
            assert (await client_credentials(http, client.client_id)).status_code == 401
