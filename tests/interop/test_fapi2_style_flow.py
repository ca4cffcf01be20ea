"""A FAPI 2.0-style client driven by Authlib: PAR (RFC 9126) + private_key_jwt (RFC 7523, Authlib's
PrivateKeyJWT with the issuer as audience) + PKCE S256, then a refresh; the client is required to push."""

from __future__ import annotations

import warnings
from urllib.parse import urlencode

import httpx
from joserfc.jwk import ECKey
from starlette.applications import Starlette

from authserver.services import Services
from tests.conftest import ISSUER
from tests.interop.test_authlib_client import browse
from tests.support.factories import REDIRECT_URI, make_client, make_user

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.common.security import generate_token
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from authlib.oauth2.rfc7523 import PrivateKeyJWT
    from authlib.oauth2.rfc7636 import create_s256_code_challenge


async def test_par_private_key_jwt_pkce_code_flow_and_refresh(app: Starlette, http: httpx.AsyncClient, services: Services) -> None:
    key = ECKey.generate_key("P-256", {"kid": "fapi-1"})
    registered = await make_client(
        services, token_endpoint_auth_method="private_key_jwt", jwks={"keys": [key.as_dict(private=False)]},
        token_endpoint_auth_signing_alg="ES256", require_pushed_authorization_requests=True,
    )
    user = await make_user(services)
    auth = PrivateKeyJWT(ISSUER, alg="ES256", headers={"kid": "fapi-1"})
    async with AsyncOAuth2Client(
        registered.client_id, key, token_endpoint_auth_method=auth, revocation_endpoint_auth_method=auth,
        transport=httpx.ASGITransport(app=app), base_url=ISSUER, redirect_uri=REDIRECT_URI, scope="openid offline_access read:levels",
    ) as client:
        verifier = generate_token(64)
        # Authlib has no PAR helper: the pushed request goes over the same client with its own client auth.
        pushed = await client.post(
            f"{ISSUER}/par",
            data={
                "response_type": "code", "client_id": registered.client_id, "redirect_uri": REDIRECT_URI,
                "scope": "openid offline_access read:levels", "state": "st-1", "nonce": "n-1",
                "code_challenge": create_s256_code_challenge(verifier), "code_challenge_method": "S256",
            },
            auth=client.client_auth(auth),
        )
        assert pushed.status_code == 201, pushed.text
        url = f"{ISSUER}/authorize?" + urlencode({"client_id": registered.client_id, "request_uri": pushed.json()["request_uri"]})
        callback = await browse(http, url, user)
        token = await client.fetch_token(f"{ISSUER}/token", authorization_response=callback, code_verifier=verifier, state="st-1")
        assert token["id_token"] and token["refresh_token"]
        refreshed = await client.refresh_token(f"{ISSUER}/token", refresh_token=token["refresh_token"])
        assert refreshed["access_token"] != token["access_token"] and refreshed["refresh_token"] != token["refresh_token"]
        # Without client authentication the refresh token is worthless (FAPI …-refresh-token).
        stolen = await http.post("/token", data={"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"],
                                                 "client_id": registered.client_id})
        assert stolen.status_code == 401 and stolen.json()["error"] == "invalid_client"
