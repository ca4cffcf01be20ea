"""Interop for resource servers: explicit algorithm allow-lists reject forged tokens (RFC 8725 §3.1,
CVE-2024-37568 class: HMAC with the public key, alg none, a kid that is not ours)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from joserfc import jwt as jose_jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from authserver.services import Services
from tests.support.factories import make_client

AUDIENCE = "https://api.cmipro.example"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def machine_token(http: httpx.AsyncClient, services: Services) -> str:
    client = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"])
    response = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))
    return str(response.json()["access_token"])


def forgeries(token: str, jwks: dict[str, Any]) -> list[str]:
    header = pyjwt.get_unverified_header(token)
    claims = pyjwt.decode(token, options={"verify_signature": False})
    claims["scope"] = "write:alerts"
    body = b64(json.dumps(claims).encode())
    public = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    signing_input = f"{b64(json.dumps(header | {'alg': 'HS256'}).encode())}.{body}"
    hs = hmac.new(json.dumps(public).encode(), signing_input.encode(), hashlib.sha256).digest()
    none_header = b64(json.dumps(header | {"alg": "none"}).encode())
    stranger = ECKey.generate_key("P-256", private=True)
    foreign = jose_jwt.encode(header | {"kid": "not-ours"}, claims, stranger)
    original_header, _, signature = token.split(".")
    return [
        f"{signing_input}.{b64(hs)}",  # HMAC keyed with our public key
        f"{none_header}.{body}.",  # alg none
        f"{original_header}.{body}.{signature}",  # claims changed under the original signature
        foreign,  # signed by someone else
    ]


async def test_forged_tokens_fail_with_allow_lists(http: httpx.AsyncClient, services: Services) -> None:
    token = await machine_token(http, services)
    jwks = (await http.get("/jwks")).json()
    keys = pyjwt.PyJWKSet.from_dict(jwks)
    keyset = KeySet.import_key_set(jwks)
    assert jose_jwt.decode(token, keyset, algorithms=["ES256", "RS256"]).claims["scope"] == "read:levels"
    for forged in forgeries(token, jwks):
        with pytest.raises((JoseError, ValueError)):
            jose_jwt.decode(forged, keyset, algorithms=["ES256", "RS256"])
        kid = pyjwt.get_unverified_header(forged).get("kid")
        key = keys[kid].key if kid in {k["kid"] for k in jwks["keys"]} else None
        if key is not None:
            with pytest.raises(pyjwt.PyJWTError):
                pyjwt.decode(forged, key, algorithms=["ES256", "RS256"], audience=AUDIENCE)


async def test_userinfo_rejects_the_same_forgeries(http: httpx.AsyncClient, services: Services) -> None:
    token = await machine_token(http, services)
    jwks = (await http.get("/jwks")).json()
    for forged in forgeries(token, jwks):
        response = await http.get("/userinfo", headers={"Authorization": f"Bearer {forged}"})
        assert response.status_code == 401
