"""Test data: clients and users with unique names, PKCE pairs, and a scripted browser sign-in."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from authserver.services import Services
from authserver.storage.sql.clients import ClientInfo

PASSWORD = "correct horse battery staple"
REDIRECT_URI = "https://app.example/callback"
ALL_SCOPES = ["openid", "profile", "email", "offline_access", "read:stations", "read:levels", "read:alerts", "write:alerts"]


@dataclass
class AppClient:
    info: ClientInfo
    secret: str | None

    @property
    def client_id(self) -> str:
        return self.info.client_id


@dataclass
class Person:
    account_id: str
    username: str
    password: str


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


async def make_client(services: Services, **overrides: Any) -> AppClient:
    values: dict[str, Any] = {
        "client_id": unique("client"),
        "name": "Test App",
        "client_type": "confidential",
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "scopes": ALL_SCOPES,
        "audience": ["https://api.cmipro.example"],
        "first_party": True,
    }
    values.update(overrides)
    if values["client_type"] == "public":
        values["grant_types"] = [g for g in values["grant_types"] if g != "client_credentials"]
    info, secret = await services.clients.create(**values)
    return AppClient(info, secret)


async def make_user(services: Services, *, roles: list[str] | None = None, **overrides: Any) -> Person:
    username = overrides.pop("username", unique("user"))
    account = await services.accounts.create(
        username=username,
        password_hash=await services.passwords.hash(PASSWORD),
        email=f"{username}@example.org",
        email_verified=True,
        name="Ana Test",
        roles=roles if roles is not None else ["free_user"],
        **overrides,
    )
    return Person(account.account_id, account.username, PASSWORD)


def pkce_pair() -> tuple[str, str]:
    verifier = generate_token(64)
    return verifier, create_s256_code_challenge(verifier)


def form_field(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no field {name} in page"
    return match.group(1)


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query, keep_blank_values=True).items()}


async def sign_in(http: httpx.AsyncClient, location: str, user: Person) -> httpx.Response:
    """Follow /login?i=… with the user's password; returns the response to the login POST."""
    page = await http.get(location)
    assert page.status_code == 200, page.text
    return await http.post(
        "/login",
        data={
            "i": form_field(page.text, "i"),
            "csrf": form_field(page.text, "csrf"),
            "username": user.username,
            "password": user.password,
        },
    )


async def authorize(
    http: httpx.AsyncClient,
    client: AppClient,
    user: Person | None,
    *,
    scope: str = "openid profile email offline_access read:levels",
    state: str | None = "xyz",
    extra: dict[str, str] | None = None,
    consent: bool = True,
) -> tuple[dict[str, str], str]:
    """Run the browser side of the code flow; returns the redirect's query parameters and the verifier."""
    verifier, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if state is not None:
        params["state"] = state
    params.update(extra or {})
    response = await http.get("/authorize", params=params)
    for _ in range(6):
        assert response.status_code in (302, 303), response.text
        location = response.headers["location"]
        if location.startswith(REDIRECT_URI):
            return query_of(location), verifier
        if location.startswith("/login"):
            assert user is not None, "sign-in needed"
            response = await sign_in(http, location, user)
        elif location.startswith("/consent"):
            page = await http.get(location)
            assert page.status_code == 200, page.text
            response = await http.post(
                "/consent",
                data={
                    "i": form_field(page.text, "i"),
                    "csrf": form_field(page.text, "csrf"),
                    "decision": "allow" if consent else "deny",
                },
            )
        else:
            response = await http.get(location)
    raise AssertionError("too many redirects")


async def redeem(http: httpx.AsyncClient, client: AppClient, code: str, verifier: str, **extra: str) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier}
    data.update(extra)
    auth = (client.client_id, client.secret) if client.secret else None
    if auth is None:
        data["client_id"] = client.client_id
    return await http.post("/token", data=data, auth=auth)
