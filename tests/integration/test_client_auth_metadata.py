"""Client metadata of JWT client authentication and PAR through the admin API, RFC 7591 registration and the
CLI: jwks (public keys only, each with a kid, bounded), jwks_uri (https in production, not with jwks),
token_endpoint_auth_signing_alg, require_pushed_authorization_requests; the responses show them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from authserver.protocol.client_auth import JWT_BEARER_ASSERTION
from authserver.protocol.jwks import jwks_uri_problem
from authserver.services import Services
from tests.cli.test_cli import cli, cli_env  # noqa: F401 (fixture)
from tests.conftest import ISSUER
from tests.integration.test_rfc7591_registration import CONFIGURED, reg  # noqa: F401 (fixture)
from tests.support.admin import admin_headers
from tests.support.factories import unique

API = "/admin/api"


def jwks_of(*keys: Any, private: bool = False) -> dict[str, Any]:
    return {"keys": [key.as_dict(private=private) for key in keys]}


async def token_with_assertion(http: httpx.AsyncClient, client_id: str, key: Any, alg: str) -> httpx.Response:
    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": ISSUER, "exp": now + 60, "jti": unique("jti")}
    value = jwt.encode({"alg": alg, "kid": key.kid}, claims, key, algorithms=[alg])
    return await http.post("/token", data={"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER_ASSERTION,
                                           "client_assertion": value})


async def test_admin_api_creates_and_updates_a_private_key_jwt_client(http: httpx.AsyncClient, services: Services) -> None:
    headers = await admin_headers(http, services)
    key = ECKey.generate_key("P-256", {"kid": "e1"})
    created = await http.post(f"{API}/clients", headers=headers, json={
        "name": "Gauge uploader", "client_type": "confidential", "grant_types": ["client_credentials"], "scopes": ["read:levels"],
        "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks_of(key), "token_endpoint_auth_signing_alg": "ES256",
    })
    assert created.status_code == 201, created.text
    body = created.json()
    assert "client_secret" not in body
    assert body["token_endpoint_auth_method"] == "private_key_jwt" and body["jwks"] == jwks_of(key)
    assert body["token_endpoint_auth_signing_alg"] == "ES256" and body["require_pushed_authorization_requests"] is False
    assert (await token_with_assertion(http, body["client_id"], key, "ES256")).status_code == 200
    # Swap the inline keys for a jwks_uri: the jwks must be cleared in the same change.
    both = await http.patch(f"{API}/clients/{body['client_id']}", headers=headers, json={"jwks_uri": "https://keys.example/jwks"})
    assert both.status_code == 400 and both.json()["errors"][0]["field"] == "jwks_uri"
    swapped = await http.patch(f"{API}/clients/{body['client_id']}", headers=headers, json={
        "jwks": None, "jwks_uri": "https://keys.example/jwks", "require_pushed_authorization_requests": True,
    })
    assert swapped.status_code == 200, swapped.text
    assert swapped.json()["jwks"] is None and swapped.json()["jwks_uri"] == "https://keys.example/jwks"
    assert swapped.json()["require_pushed_authorization_requests"] is True


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"jwks": "not-an-object"}, "jwks"),
        ({"jwks": {"keys": []}}, "jwks"),
        ({"jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}}, "jwks"),
        # Two keys without kids (a set of one may leave it out: the only key of its type is used).
        ({"jwks": {"keys": [RSAKey.generate_key(2048).as_dict(private=False) for _ in range(2)]}}, "jwks"),
        ({"jwks": {"keys": [{"kty": "EC", "kid": "x", "crv": "P-256", "x": "zz", "y": "zz"}]}}, "jwks"),
        ({"jwks": {"keys": [{"kty": "RSA", "kid": str(i), "n": "x" * 2000, "e": "AQAB"} for i in range(9)]}}, "jwks"),  # too big
        ({"jwks_uri": "ftp://keys.example/jwks"}, "jwks_uri"),
        ({"jwks_uri": "https://user:pw@keys.example/jwks"}, "jwks_uri"),
        ({"token_endpoint_auth_signing_alg": "none"}, "token_endpoint_auth_signing_alg"),
        ({"token_endpoint_auth_signing_alg": "HS256"}, "token_endpoint_auth_signing_alg"),  # not for private_key_jwt
        ({"jwks": None, "jwks_uri": None}, "jwks"),  # private_key_jwt without keys
        ({"require_pushed_authorization_requests": "yes"}, "require_pushed_authorization_requests"),
    ],
)
async def test_admin_api_refuses_bad_key_metadata(
    http: httpx.AsyncClient, services: Services, change: dict[str, Any], field: str
) -> None:
    headers = await admin_headers(http, services)
    key = RSAKey.generate_key(2048, {"kid": "r1"})
    body = {"name": "X", "client_type": "confidential", "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks_of(key), **change}
    response = await http.post(f"{API}/clients", headers=headers, json=body)
    assert response.status_code == 400, response.text
    assert field in [error["field"] for error in response.json()["errors"]]


async def test_admin_api_refuses_private_key_material(http: httpx.AsyncClient, services: Services) -> None:
    headers = await admin_headers(http, services)
    key = RSAKey.generate_key(2048, {"kid": "r1"})
    response = await http.post(f"{API}/clients", headers=headers, json={
        "name": "X", "client_type": "confidential", "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks_of(key, private=True),
    })
    assert response.status_code == 400 and "private key material" in response.text


def test_jwks_uri_must_be_https_in_production() -> None:
    assert jwks_uri_problem("http://keys.example/jwks", https_only=True) is not None
    assert jwks_uri_problem("http://127.0.0.1:8080/jwks", https_only=False) is None
    assert jwks_uri_problem("https://keys.example/jwks", https_only=True) is None


async def test_registration_of_a_private_key_jwt_client(reg: tuple[httpx.AsyncClient, Services]) -> None:  # noqa: F811
    http, _ = reg
    key = RSAKey.generate_key(2048, {"kid": "reg-1"})
    auth = {"Authorization": f"Bearer {CONFIGURED}"}
    metadata = {"client_name": "Sensors", "grant_types": ["client_credentials"], "scope": "read:levels",
                "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks_of(key), "token_endpoint_auth_signing_alg": "PS256"}
    response = await http.post("/register", headers=auth, json=metadata)
    assert response.status_code == 201, response.text
    body = response.json()
    assert "client_secret" not in body and body["jwks"] == jwks_of(key) and body["token_endpoint_auth_signing_alg"] == "PS256"
    assert (await token_with_assertion(http, body["client_id"], key, "PS256")).status_code == 200
    for bad in ({"jwks": jwks_of(key, private=True)}, {"jwks": None}, {"jwks_uri": "https://k.example/j"},
                {"token_endpoint_auth_signing_alg": "none"}):
        refused = await http.post("/register", headers=auth, json={**metadata, **bad})
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_client_metadata", bad


async def test_registration_quoting_a_hostile_kid_is_a_400(reg: tuple[httpx.AsyncClient, Services]) -> None:  # noqa: F811
    """A problem that quotes the client's kid (quote, backslash, non-ASCII) still makes an RFC 6749 §5.2
    error_description: invalid_client_metadata, not a 500."""
    http, services = reg
    kid = 'k"\\é'
    first, second = RSAKey.generate_key(2048, {"kid": kid}), RSAKey.generate_key(2048, {"kid": kid})
    refused = await http.post("/register", headers={"Authorization": f"Bearer {CONFIGURED}"}, json={
        "client_name": "Hostile", "grant_types": ["client_credentials"], "scope": "read:levels",
        "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks_of(first, second),
    })
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "invalid_client_metadata" and "used twice" in refused.json()["error_description"]
    assert not [c for c in await services.clients.list() if c.name == "Hostile"]


async def test_registration_of_a_client_secret_jwt_client(reg: tuple[httpx.AsyncClient, Services]) -> None:  # noqa: F811
    http, services = reg
    response = await http.post("/register", headers={"Authorization": f"Bearer {CONFIGURED}"}, json={
        "client_name": "HS", "grant_types": ["client_credentials"], "scope": "read:levels",
        "token_endpoint_auth_method": "client_secret_jwt", "require_pushed_authorization_requests": True,
    })
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["client_secret"] and body["require_pushed_authorization_requests"] is True
    stored = await services.clients.get(body["client_id"])
    assert stored is not None and stored.secrets[0].secret_encrypted


async def test_cli_creates_a_private_key_jwt_client(cli_env: None, services: Services, tmp_path: Path) -> None:  # noqa: F811
    key = ECKey.generate_key("P-256", {"kid": "cli-1"})
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(jwks_of(key)))
    client_id = unique("cli-pk")
    result = await cli("client", "create", "--name", "Uploader", "--type", "confidential", "--client-id", client_id,
                       "--grant", "client_credentials", "--auth-method", "private_key_jwt", "--jwks-file", str(jwks_file),
                       "--token-endpoint-auth-signing-alg", "ES256", "--json")
    assert result.code == 0, result.err
    shown = json.loads(result.out)
    assert "client_secret" not in shown and shown["jwks"] == jwks_of(key) and shown["token_endpoint_auth_signing_alg"] == "ES256"
    jwks_file.write_text(json.dumps(jwks_of(key, private=True)))
    refused = await cli("client", "create", "--name", "Bad", "--type", "confidential", "--client-id", unique("cli-pk"),
                        "--grant", "client_credentials", "--auth-method", "private_key_jwt", "--jwks-file", str(jwks_file))
    assert refused.code != 0 and "private key material" in refused.err and "Traceback" not in refused.err
    missing = await cli("client", "create", "--name", "Bad", "--type", "confidential", "--grant", "client_credentials",
                        "--auth-method", "private_key_jwt")
    assert missing.code != 0 and "jwks" in missing.err
