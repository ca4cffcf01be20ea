"""One error renderer per channel, over the whole route table (issue 16): every route declares its channel
(OAuth JSON, admin JSON or HTML page), its error answers are in that channel's format, and an unexpected
exception inside an endpoint becomes a logged, generic 500 in the channel's format (never plain text,
never a traceback); a database refusal of the input is a 400, an outage a 503. SQLite and PostgreSQL.
"""

from __future__ import annotations

import logging
import re

import httpx
import pytest
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from authserver.admin.registration import issue_initial_access_token
from authserver.endpoints._http import ADMIN_JSON, HTML, OAUTH_JSON, channel_of
from authserver.services import Services
from tests.support.admin import admin_headers
from tests.support.factories import make_client

# Routes outside the three channels, and why.
NO_CHANNEL = {
    "healthz": "probe: a fixed JSON status for the load balancer",
    "readyz": "probe: a fixed JSON status for the load balancer",
    "metrics": "Prometheus text format, scraped on the private network",
    "static": "files",
}
REQUEST_ID = "issue16-channel-test"


def routes(app: Starlette) -> list[Route | Mount]:
    return [r for r in app.routes if isinstance(r, (Route, Mount))]


def concrete(route: Route) -> str:
    return re.sub(r"\{[^}]+\}", "nobody", route.path)


def assert_channel(channel: str, response: httpx.Response, what: str) -> None:
    """The answer is in the channel's format: §5.2 JSON with no-store, or our HTML page; no traceback."""
    assert "Traceback" not in response.text, what
    assert response.headers.get("cache-control", "").startswith("no-store"), (what, response.headers)
    if channel in (OAUTH_JSON, ADMIN_JSON):
        assert response.headers["content-type"].startswith("application/json"), (what, response.text)
        body = response.json()
        assert isinstance(body.get("error"), str) and re.fullmatch(r"[a-z_]+", body["error"]), (what, body)
    else:
        assert response.headers["content-type"].startswith("text/html"), (what, response.text[:200])
        assert "<html" in response.text.lower(), what


def test_every_route_declares_its_error_channel(app: Starlette) -> None:
    undeclared = []
    for route in routes(app):
        channel = channel_of(route.endpoint) if isinstance(route, Route) else None
        if route.name in NO_CHANNEL:
            assert channel is None, f"{route.name} is listed without a channel but declares {channel}"
        elif channel not in (OAUTH_JSON, ADMIN_JSON, HTML):
            undeclared.append(route.name)
    assert not undeclared, f"routes without an error channel: {undeclared}"
    channels = {channel_of(r.endpoint) for r in routes(app) if isinstance(r, Route)}
    assert {OAUTH_JSON, ADMIN_JSON, HTML} <= channels


async def test_every_route_answers_errors_in_its_channel(http: httpx.AsyncClient, app: Starlette) -> None:
    """A method the route does not take, and each method it takes with hostile input and no credentials."""
    checked = 0
    for route in routes(app):
        if not isinstance(route, Route) or route.name in NO_CHANNEL:
            continue
        channel = channel_of(route.endpoint)
        assert channel is not None
        path = concrete(route)
        answer = await http.request("PUT", path, headers={"Accept": "text/html"})
        assert answer.status_code in (400, 401, 405), (route.name, answer.status_code, answer.text[:200])
        assert_channel(channel, answer, f"{route.name} PUT")
        for method in sorted((route.methods or set()) & {"GET", "POST", "PATCH", "DELETE"}):
            answer = await http.request(
                method, f"{path}?i=%00&client_id=%00&limit=x", content=b"\x00\xff{",
                headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"},
            )
            assert answer.status_code < 500, (route.name, method, answer.status_code, answer.text[:200])
            if answer.status_code >= 400:
                assert_channel(channel, answer, f"{route.name} {method}")
                checked += 1
    assert checked >= 30, checked


def boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("injected: not for the client's eyes")


def assert_logged_with_request_id(caplog: pytest.LogCaptureFixture) -> None:
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR and REQUEST_ID in r.getMessage()]
    assert logged and logged[0].exc_info is not None, [r.getMessage() for r in caplog.records]


def assert_generic_500(channel: str, response: httpx.Response) -> None:
    assert response.status_code == 500, response.text[:300]
    assert "injected" not in response.text and "RuntimeError" not in response.text
    assert_channel(channel, response, "injected exception")
    if channel != HTML:
        assert response.json()["error"] == "server_error"


async def test_an_unexpected_exception_is_a_generic_500_in_the_oauth_channel(
    http: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    client = await make_client(services, scopes=["read:stations"])
    monkeypatch.setattr(services.clients, "get", boom)
    response = await http.post(
        "/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret or ""),
        headers={"X-Request-ID": REQUEST_ID},
    )
    assert_generic_500(OAUTH_JSON, response)
    assert_logged_with_request_id(caplog)


async def test_an_unexpected_exception_at_register_is_a_generic_500_json(
    http: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """/register had no catch-all: anything unexpected was Starlette's plain-text 500."""
    token = issue_initial_access_token(services, ttl=600)
    monkeypatch.setattr(services.clients, "create", boom)
    response = await http.post(
        "/register", json={"client_name": "x", "redirect_uris": ["https://app.example/cb"]},
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": REQUEST_ID},
    )
    assert_generic_500(OAUTH_JSON, response)
    assert_logged_with_request_id(caplog)


async def test_an_unexpected_exception_is_a_generic_500_in_the_admin_channel(
    http: httpx.AsyncClient, app: Starlette, services: Services, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {**await admin_headers(http, services), "X-Request-ID": REQUEST_ID}
    monkeypatch.setattr(app.state.admin, "list_clients", boom)
    response = await http.get("/admin/api/clients", headers=headers)
    assert_generic_500(ADMIN_JSON, response)
    assert_logged_with_request_id(caplog)


@pytest.mark.parametrize("path", ["/login?i=abc", "/logout", "/account/sessions", "/account/mfa", "/account/password", "/authorize/resume?i=abc"])
async def test_an_unexpected_exception_is_a_generic_500_page(
    http: httpx.AsyncClient, app: Starlette, services: Services, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, path: str,
) -> None:
    monkeypatch.setattr(app.state.interactions, "get", boom)
    monkeypatch.setattr(app.state.interactions, "start", boom)
    monkeypatch.setattr(services.browser_sessions, "get", boom)
    response = await http.get(path, headers={"X-Request-ID": REQUEST_ID, "Accept": "text/html"})
    assert_generic_500(HTML, response)
    assert_logged_with_request_id(caplog)


class DataException(Exception):
    sqlstate = "22021"  # character_not_in_repertoire: a NUL byte PostgreSQL refuses in text


def refused_by_database(*args: object, **kwargs: object) -> None:
    raise DBAPIError("SELECT …", {}, DataException("invalid byte sequence"))


def outage(*args: object, **kwargs: object) -> None:
    raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


async def test_bad_input_refused_by_the_database_is_400_and_an_outage_503_in_each_channel(
    http: httpx.AsyncClient, app: Starlette, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await make_client(services, scopes=["read:stations"])
    headers = await admin_headers(http, services)
    for failure, status, error in ((refused_by_database, 400, "invalid_request"), (outage, 503, "temporarily_unavailable")):
        with monkeypatch.context() as patch:
            patch.setattr(services.clients, "get", failure)
            patch.setattr(app.state.admin, "list_users", failure)
            patch.setattr(app.state.interactions, "get", failure)
            answers = {
                OAUTH_JSON: await http.post(
                    "/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret or "")
                ),
                ADMIN_JSON: await http.get("/admin/api/users", headers=headers),
                HTML: await http.get("/login?i=abc", headers={"Accept": "text/html"}),
            }
        for channel, answer in answers.items():
            assert answer.status_code == status, (channel, answer.status_code, answer.text[:200])
            assert_channel(channel, answer, f"{channel} {failure.__name__}")
            if channel != HTML:
                assert answer.json()["error"] == error
            if status == 503:
                assert answer.headers["retry-after"] == "5"


async def test_the_router_refuses_a_method_in_the_routes_channel(http: httpx.AsyncClient, services: Services) -> None:
    """Routes with a fixed method list: the router's 405 is still JSON (admin, JWKS) with Allow."""
    headers = await admin_headers(http, services)
    answer = await http.put("/admin/api/roles", headers=headers)
    assert answer.status_code == 405 and set(answer.headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert_channel(ADMIN_JSON, answer, "admin 405")
    answer = await http.post("/jwks")
    assert answer.status_code == 405
    assert_channel(OAUTH_JSON, answer, "jwks 405")
    answer = await http.get("/admin/api/nothing-here", headers=headers)
    assert answer.status_code == 404 and answer.json()["error"] == "not_found"
