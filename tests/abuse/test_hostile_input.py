"""Hostile input on every endpoint (property-based): never a 5xx, and no change of state.

Failure counters (``login_throttles``) and the security log are the only tables a rejected request may
write: counting failures is what brute-force protection is for.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from authserver.settings import Settings
from authserver.storage.sql import models
from tests.abuse.conftest import login_page, running
from tests.support.factories import REDIRECT_URI, make_client, make_user, pkce_pair

ENDPOINTS = [
    ("GET", "/authorize"), ("POST", "/authorize"), ("GET", "/authorize/resume"), ("GET", "/login"), ("POST", "/login"),
    ("GET", "/consent"), ("POST", "/consent"), ("POST", "/token"), ("GET", "/token"), ("GET", "/userinfo"),
    ("POST", "/userinfo"), ("GET", "/account"), ("GET", "/jwks"), ("GET", "/.well-known/openid-configuration"),
    ("GET", "/healthz"), ("GET", "/readyz"), ("PATCH", "/token"), ("OPTIONS", "/authorize"),
]
NAMES = [
    "client_id", "client_secret", "redirect_uri", "response_type", "scope", "state", "nonce", "code_challenge",
    "code_challenge_method", "prompt", "max_age", "grant_type", "code", "code_verifier", "refresh_token", "resource",
    "i", "csrf", "username", "password", "decision", "access_token", "ui_locales", "request", "request_uri", "login_hint",
]
STATE_TABLES = [
    models.Account, models.Client, models.ClientSecret, models.BackupCode, models.BrowserSession, models.Consent,
    models.Grant, models.AuthorizationCode, models.RefreshToken, models.SigningKey, models.ServerFlag,
]
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "\x00", "%00", "' OR 1=1 --", "<script>alert(1)</script>", "../../etc/passwd", "\ud800",
                     "x" * 5000, "openid openid", "S256", "plain", "code", "authorization_code", "client_credentials",
                     "refresh_token", "none", "allow", "https://evil.example/cb", REDIRECT_URI, "-1", "99999999999999999999"]),
)


def auth_header() -> st.SearchStrategy[str | None]:
    basic = st.tuples(st.text(max_size=20), st.text(max_size=20)).map(
        lambda pair: "Basic " + base64.b64encode(f"{pair[0]}:{pair[1]}".encode("utf-8", "surrogatepass")).decode()
    )
    return st.one_of(st.none(), st.none(), st.none(), st.none(), basic, st.text(max_size=30).map(lambda t: f"Bearer {t}"),
                     st.sampled_from(["Basic", "Basic !!!", "Bearer", "Bearer a.b.c", "Digest x", "Basic " + "A" * 5000]))


async def snapshot(services: Any) -> dict[str, int]:
    async with services.sessions() as session:
        return {t.__tablename__: int(await session.scalar(select(func.count()).select_from(t)) or 0) for t in STATE_TABLES}


async def test_hostile_requests(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings({"AUTHSERVER_ABUSE__LOGIN_PER_IP": "1000000", "AUTHSERVER_ABUSE__AUTHORIZE_PER_IP": "1000000"})) as run:
        # A public client: requests naming it get past client authentication into the grants.
        client = await make_client(run.services, client_type="public")
        person = await make_user(run.services)
        interaction, csrf = await login_page(run.http)
        _, challenge = pkce_pair()
        plausible = {
            "client_id": client.client_id, "i": interaction, "csrf": csrf, "code_challenge": challenge,
            "code_challenge_method": "S256", "response_type": "code", "redirect_uri": REDIRECT_URI, "scope": "openid profile",
            "username": person.username, "decision": "allow", "code_verifier": "a" * 50, "prompt": "none",
        }
        grant_types = st.sampled_from(["authorization_code", "refresh_token", "client_credentials", "password", "x"])

        def near_valid(parts: tuple[frozenset[str], dict[str, str], str, list[tuple[str, str]]]) -> list[tuple[str, str]]:
            dropped, mutated, grant_type, junk = parts
            values = {**plausible, "grant_type": grant_type}
            for name in dropped:
                values.pop(name, None)
            values.update(mutated)
            return [*values.items(), *junk]

        # A plausible request with some parameters dropped, some given hostile values, and sometimes junk on top.
        junk = st.lists(st.tuples(st.one_of(st.sampled_from(NAMES), st.text(max_size=10)), HOSTILE_TEXT), max_size=4)
        params = st.tuples(
            st.frozensets(st.sampled_from([*plausible, "grant_type"])),
            st.dictionaries(st.sampled_from(NAMES), HOSTILE_TEXT, max_size=4),
            grant_types,
            st.one_of(st.just([]), st.just([]), junk),
        ).map(near_valid)
        before = await snapshot(run.services)

        @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(
            query=params, body=params, raw=st.one_of(st.none(), st.none(), st.none(), st.binary(max_size=200)),
            content_type=st.sampled_from(["application/x-www-form-urlencoded"] * 6 + ["application/json", "text/plain", "",
                                          "application/x-www-form-urlencoded; charset=utf-16", "multipart/form-data"]),
            authorization=auth_header(), cookie=st.one_of(st.none(), st.text(max_size=40)),
        )
        def hostile(query: list[tuple[str, str]], body: list[tuple[str, str]],
                          raw: bytes | None, content_type: str, authorization: str | None, cookie: str | None) -> None:
            for method, path in ENDPOINTS:
                send(method, path, query, body, raw, content_type, authorization, cookie)

        def send(method: str, path: str, query: list[tuple[str, str]], body: list[tuple[str, str]], raw: bytes | None,
                 content_type: str, authorization: str | None, cookie: str | None) -> None:
            headers: dict[str, str] = {}
            if content_type:
                headers["Content-Type"] = content_type
            if authorization is not None:
                headers["Authorization"] = authorization
            if cookie is not None:
                headers["Cookie"] = "authserver_session=" + cookie.encode("ascii", "ignore").decode().replace(";", "")
            try:
                url = httpx.URL(path, params=[(k, v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")) for k, v in query])
                content = raw if raw is not None else httpx.QueryParams(
                    [(k, v.encode("utf-8", "surrogatepass").decode("utf-8", "replace")) for k, v in body]
                ).__str__().encode()
                request = run.http.request(method, url, content=content if method not in ("GET", "OPTIONS") else None, headers=headers)
            except (httpx.InvalidURL, UnicodeEncodeError, ValueError):
                return  # the client library refused to build it
            try:
                response = asyncio.run_coroutine_threadsafe(request, loop).result(timeout=60)
            except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError, ValueError):
                return  # the client library refused to send it
            assert response.status_code < 500, (method, path, response.status_code, response.text[:300])

        # Hypothesis drives a synchronous test: it runs in a thread and sends each request on this loop.
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(hostile)
        assert await snapshot(run.services) == before
