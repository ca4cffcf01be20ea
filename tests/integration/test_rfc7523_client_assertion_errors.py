"""Refused client assertions (RFC 7523 §3, OIDC Core §9) and the registered method enforced for every client.

Each bad assertion, built with joserfc, gets 401 ``invalid_client`` (400 ``invalid_request`` for a request
mixing methods), never a 5xx and never a token. The conformance suite's FAPI 2.0 modules
``…-client-assertion-with-exp-is-5-minutes-in-past-fails`` and ``…-with-wrong-aud-fails`` are among them.
A jti is single use across two instances sharing Redis.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from authserver.protocol.client_auth import JWT_BEARER_ASSERTION
from authserver.services import Services
from tests.conftest import ISSUER, REDIS_URL
from tests.support.apps import running_app
from tests.support.factories import AppClient, make_client

TOKEN_URL = f"{ISSUER}/token"


def assertion(key: Any, client_id: str, *, alg: str = "PS256", header: dict[str, Any] | None = None, **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "iat": now, "exp": now + 60,
                               "jti": secrets.token_urlsafe(16)}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    protected = {"alg": alg, **({"kid": key.kid} if getattr(key, "kid", None) else {}), **(header or {})}
    return jwt.encode(protected, payload, key, algorithms=[alg])


def unsigned(client_id: str) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"iss": client_id, "sub": client_id, "aud": TOKEN_URL, "exp": now + 60, "jti": secrets.token_urlsafe(8)}
    return f"{part({'alg': 'none'})}.{part(claims)}."


async def present(http: httpx.AsyncClient, value: str, **extra: str) -> httpx.Response:
    data = {"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER_ASSERTION, "client_assertion": value}
    data.update(extra)
    return await http.post("/token", data=data)


def refused(response: httpx.Response, error: str = "invalid_client") -> None:
    assert response.status_code == (401 if error == "invalid_client" else 400), response.text
    body = response.json()
    assert body["error"] == error and "access_token" not in body


@pytest.fixture
async def pkjwt(services: Services) -> tuple[AppClient, RSAKey]:
    key = RSAKey.generate_key(2048, {"kid": "k1"})
    client = await make_client(
        services, token_endpoint_auth_method="private_key_jwt", jwks={"keys": [key.as_dict(private=False)]},
        token_endpoint_auth_signing_alg="PS256",
    )
    return client, key


async def test_a_good_assertion_works_once(http: httpx.AsyncClient, pkjwt: tuple[AppClient, RSAKey]) -> None:
    client, key = pkjwt
    value = assertion(key, client.client_id)
    first = await present(http, value)
    assert first.status_code == 200, first.text
    refused(await present(http, value))  # replayed jti


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": int(time.time()) - 300},  # FAPI: exp 5 minutes in the past
        {"exp": int(time.time()) - 30},
        {"exp": None},
        {"exp": "soon"},
        {"exp": int(time.time()) + 7200},  # lives longer than client_auth.assertion_max_lifetime
        {"aud": "https://other.example/token"},  # FAPI: wrong aud
        {"aud": [f"{ISSUER}/userinfo"]},
        {"aud": None},
        {"iss": "someone-else"},
        {"sub": "someone-else"},
        {"jti": None},
        {"iat": int(time.time()) + 600},
        {"nbf": int(time.time()) + 600},
    ],
    ids=["exp-5min-past", "expired", "no-exp", "exp-not-number", "too-long", "wrong-aud", "aud-userinfo", "no-aud",
         "wrong-iss", "wrong-sub", "no-jti", "iat-future", "nbf-future"],
)
async def test_bad_claims_are_invalid_client(http: httpx.AsyncClient, pkjwt: tuple[AppClient, RSAKey], claims: dict[str, Any]) -> None:
    client, key = pkjwt
    refused(await present(http, assertion(key, client.client_id, **claims)))


async def test_the_issuer_and_the_par_endpoint_are_audiences_too(http: httpx.AsyncClient, pkjwt: tuple[AppClient, RSAKey]) -> None:
    client, key = pkjwt
    for aud in (ISSUER, f"{ISSUER}/par", [TOKEN_URL, "https://other.example"]):
        assert (await present(http, assertion(key, client.client_id, aud=aud))).status_code == 200


async def test_bad_signatures_and_algorithms(http: httpx.AsyncClient, pkjwt: tuple[AppClient, RSAKey]) -> None:
    client, key = pkjwt
    impostor = RSAKey.generate_key(2048, {"kid": "k1"})  # same kid, other key
    refused(await present(http, assertion(impostor, client.client_id)))
    refused(await present(http, unsigned(client.client_id)))
    # RS256 is allowed in general but this client registered PS256.
    refused(await present(http, assertion(key, client.client_id, alg="RS256")))
    # HS256 keyed with the client's public key material (the algorithm-confusion attack; joserfc refuses a
    # PEM as an HMAC key, so the public JWK's bytes stand in for it).
    public_bytes = json.dumps(key.as_dict(private=False)).encode()
    refused(await present(http, assertion(OctKey.import_key(public_bytes), client.client_id, alg="HS256", header={"kid": "k1"})))
    unknown = RSAKey.generate_key(2048, {"kid": "not-registered"})
    refused(await present(http, assertion(unknown, client.client_id)))


async def test_malformed_assertions(http: httpx.AsyncClient, pkjwt: tuple[AppClient, RSAKey]) -> None:
    client, key = pkjwt
    for value in ("not-a-jwt", "a.b.c", "ey.ey.ey", "é", assertion(key, client.client_id) + "x"):
        refused(await present(http, value))
    # Hostile subjects (a lone surrogate, NUL, an overlong id) are refused before any lookup.
    for subject in ("\ud800", "a\u0000b", "x" * 300, "", 42):
        claims = {"iss": subject, "sub": subject, "aud": TOKEN_URL, "exp": int(time.time()) + 60, "jti": "j"}
        part = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        refused(await present(http, f"eyJhbGciOiJQUzI1NiJ9.{part}.c2ln"))
    good = assertion(key, client.client_id)
    refused(await present(http, good, client_assertion_type="urn:ietf:params:oauth:client-assertion-type:saml2-bearer"))
    refused(await present(http, good, client_id="another-client"))
    response = await http.post("/token", data={"grant_type": "client_credentials", "client_assertion": good})
    refused(response)
    # Two methods at once.
    mixed = await http.post("/token", data={"grant_type": "client_credentials", "client_assertion_type": JWT_BEARER_ASSERTION,
                                            "client_assertion": good}, auth=(client.client_id, "x"))
    refused(mixed, "invalid_request")


async def test_each_client_authenticates_with_its_registered_method_only(
    http: httpx.AsyncClient, services: Services, pkjwt: tuple[AppClient, RSAKey]
) -> None:
    basic = await make_client(services)  # client_secret_basic
    post = await make_client(services, token_endpoint_auth_method="client_secret_post")
    hs = await make_client(services, token_endpoint_auth_method="client_secret_jwt")
    data = {"grant_type": "client_credentials"}
    assert basic.secret and post.secret and hs.secret
    # The registered methods work.
    assert (await http.post("/token", data=data, auth=(basic.client_id, basic.secret))).status_code == 200
    assert (await http.post("/token", data={**data, "client_id": post.client_id, "client_secret": post.secret})).status_code == 200
    # basic for a post client: 401 with WWW-Authenticate; post for a basic client; none for a confidential one.
    wrong = await http.post("/token", data=data, auth=(post.client_id, post.secret))
    refused(wrong)
    assert wrong.headers["www-authenticate"].startswith("Basic")
    refused(await http.post("/token", data={**data, "client_id": basic.client_id, "client_secret": basic.secret}))
    refused(await http.post("/token", data={**data, "client_id": basic.client_id}))
    # client_secret_jwt's secret is not a password for basic or post, and its assertion is not for a basic client.
    refused(await http.post("/token", data=data, auth=(hs.client_id, hs.secret)))
    refused(await present(http, assertion(OctKey.import_key(basic.secret), basic.client_id, alg="HS256")))
    # A private_key_jwt client cannot fall back to a secret, nor sign with HMAC.
    pk_client, _ = pkjwt
    refused(await http.post("/token", data={**data, "client_id": pk_client.client_id}))
    refused(await present(http, assertion(OctKey.import_key(hs.secret), pk_client.client_id, alg="HS256")))
    # At /introspect and /revoke as well.
    refused(await http.post("/introspect", data={"token": "x"}, auth=(post.client_id, post.secret)))
    refused(await http.post("/revoke", data={"token": "x", "client_id": basic.client_id, "client_secret": basic.secret}))


async def test_client_secret_jwt_errors(http: httpx.AsyncClient, services: Services) -> None:
    hs = await make_client(services, token_endpoint_auth_method="client_secret_jwt")
    assert hs.secret
    secret_key = OctKey.import_key(hs.secret)
    ok = await present(http, assertion(secret_key, hs.client_id, alg="HS256"))
    assert ok.status_code == 200, ok.text
    refused(await present(http, assertion(OctKey.import_key("cs_" + "x" * 43), hs.client_id, alg="HS256")))
    refused(await present(http, assertion(secret_key, hs.client_id, alg="HS256", exp=int(time.time()) - 300)))
    refused(await present(http, assertion(RSAKey.generate_key(2048), hs.client_id, alg="RS256")))


async def test_a_jti_is_single_use_across_two_instances(database_url: str, tmp_root: Path) -> None:
    # Two app instances with their own in-process registries, sharing the database and Redis.
    shared = {"AUTHSERVER_CACHE__URL": REDIS_URL}
    async with (
        running_app(database_url, tmp_root, **shared) as (_, services_a, http_a),
        running_app(database_url, tmp_root, **shared) as (_, _services_b, http_b),
    ):
        key = RSAKey.generate_key(2048, {"kid": "k"})
        client = await make_client(services_a, token_endpoint_auth_method="private_key_jwt", jwks={"keys": [key.as_dict(private=False)]})
        value = assertion(key, client.client_id)
        assert (await present(http_a, value)).status_code == 200
        refused(await present(http_b, value))
        other = assertion(key, client.client_id)
        assert (await present(http_b, other)).status_code == 200
        refused(await present(http_a, other))


async def test_every_advertised_asymmetric_algorithm_works(http: httpx.AsyncClient, services: Services) -> None:
    from joserfc.jwk import ECKey, OKPKey

    from authserver.grants.client_assertion import PRIVATE_KEY_JWT_ALGS

    makers = {"RS": lambda: RSAKey.generate_key(2048, {"kid": "k"}), "PS": lambda: RSAKey.generate_key(2048, {"kid": "k"}),
              "Ed": lambda: OKPKey.generate_key("Ed25519", {"kid": "k"})}
    curves = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
    for alg in PRIVATE_KEY_JWT_ALGS:
        key = ECKey.generate_key(curves[alg], {"kid": "k"}) if alg in curves else makers[alg[:2]]()
        client = await make_client(services, token_endpoint_auth_method="private_key_jwt", jwks={"keys": [key.as_dict(private=False)]})
        response = await present(http, assertion(key, client.client_id, alg=alg))
        assert response.status_code == 200, (alg, response.text)
    # The deprecated polymorphic name (RFC 9864) is not accepted.
    okp = OKPKey.generate_key("Ed25519", {"kid": "k"})
    client = await make_client(services, token_endpoint_auth_method="private_key_jwt", jwks={"keys": [okp.as_dict(private=False)]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # joserfc warns when signing with the deprecated name
        value = assertion(okp, client.client_id, alg="EdDSA")
    refused(await present(http, value))
