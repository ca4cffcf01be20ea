"""Metrics, structured logs with request ids and trace context, readiness, and the SIGTERM drain."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from authserver.app import create_app
from authserver.logging import configure_logging
from authserver.services import Services
from authserver.settings import load_settings
from authserver.shutdown import install_drain_on_sigterm
from tests.conftest import ISSUER, create_pg_database, drop_pg_database, environ_for, fast_passwords
from tests.support.admin import admin_headers
from tests.support.factories import make_client, make_user, sign_in

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_count_real_requests(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"])
    before = samples((await http.get("/metrics")).text)
    for _ in range(2):
        ok = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))
        assert ok.status_code == 200
    assert (await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, "wrong"))).status_code == 401
    assert (await http.get("/no/such/path/12345")).status_code == 404
    # A failed sign-in through the login page.
    web = await make_client(services)
    start = await http.get("/authorize", params={
        "response_type": "code", "client_id": web.client_id, "redirect_uri": "https://app.example/callback",
        "scope": "openid", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256",
    })
    person = await make_user(services)
    person.password = "wrong password entirely"
    assert (await sign_in(http, start.headers["location"], person)).status_code == 401

    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    after = samples(response.text)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("authserver_http_requests_total", route="/token", method="POST", status="200") == 2
    assert delta("authserver_http_requests_total", route="/token", method="POST", status="401") == 1
    assert delta("authserver_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert delta("authserver_http_request_duration_seconds_count", route="/token", method="POST") == 3
    assert delta("authserver_tokens_issued_total", grant_type="client_credentials", client_id=client.client_id) == 2
    assert delta("authserver_sign_ins_total", outcome="failure") == 1
    assert delta("authserver_security_events_total", event="login", outcome="failure") == 1
    ages = [k for k in after if k[0] == "authserver_signing_key_age_seconds"]
    states = {dict(labels)["state"] for _, labels in ages}
    assert "active" in states and states <= {"next", "active", "retired"}
    assert ("authserver_db_pool_connections_in_use", ()) in after


async def test_admin_route_label_is_the_template(http: httpx.AsyncClient, services: Services) -> None:
    headers = await admin_headers(http, services)
    await http.get("/admin/api/clients/some-client-id", headers=headers)
    found = samples((await http.get("/metrics")).text)
    assert value(found, "authserver_http_requests_total", route="/admin/api/clients/{client_id}", method="GET", status="404") >= 1
    assert not any("some-client-id" in str(labels) for _, labels in found)


def test_429_responses_count_as_rate_limit_rejections() -> None:
    from authserver.metrics import Metrics

    metrics = Metrics()
    metrics.observe_request("/token", "POST", 429, 0.01)
    metrics.observe_request("/token", "POST", 400, 0.01)
    found = samples(metrics.exposition()[0].decode())
    assert value(found, "authserver_rate_limited_total", route="/token") == 1


async def test_metrics_token_protects_the_endpoint(backend: str, database_url: str, tmp_root: Path) -> None:
    settings = load_settings(environ_for(backend, database_url, tmp_root, AUTHSERVER_OBSERVABILITY__METRICS_TOKEN="scrape-secret-123"))
    app = create_app(settings, passwords=fast_passwords())
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers={"Authorization": "Bearer nope"})).status_code == 401
        ok = await http.get("/metrics", headers={"Authorization": "Bearer scrape-secret-123"})
        assert ok.status_code == 200 and "authserver_http_requests_total" in ok.text


# -- logs ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level, logging.getLogger(name).propagate)
             for name in ("authserver", "uvicorn", "uvicorn.error")}
    access_disabled = logging.getLogger("uvicorn.access").disabled
    configure_logging("json", "INFO", stream=stream)
    try:
        yield stream
    finally:
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.level, logger.propagate = handlers, level, propagate
        logging.getLogger("uvicorn.access").disabled = access_disabled


async def test_log_lines_carry_the_request_id_and_traceparent(
    http: httpx.AsyncClient, services: Services, log_stream: io.StringIO
) -> None:
    headers = await admin_headers(http, services)
    response = await http.post(
        "/admin/api/users", headers={**headers, "X-Request-ID": "req-abc-123", "traceparent": TRACEPARENT},
        json={"username": f"log-{id(log_stream)}"},
    )
    assert response.status_code == 201
    assert response.headers["x-request-id"] == "req-abc-123"
    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    created = [line for line in lines if line.get("security_event", {}).get("event") == "admin.user_created"]
    assert created, lines
    assert created[0]["request_id"] == "req-abc-123"
    assert created[0]["traceparent"] == TRACEPARENT
    assert created[0]["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert created[0]["level"] == "INFO" and created[0]["time"].endswith("+00:00")

    # Without headers: an id is generated, returned, and logged; a malformed traceparent is replaced.
    log_stream.truncate(0)
    log_stream.seek(0)
    response = await http.post(
        "/admin/api/users", headers={**headers, "traceparent": "00-zz-bad"}, json={"username": f"log2-{id(log_stream)}"}
    )
    generated = response.headers["x-request-id"]
    line = next(json.loads(x) for x in log_stream.getvalue().splitlines() if "admin.user_created" in x)
    assert line["request_id"] == generated
    assert line["traceparent"] != "00-zz-bad" and len(line["trace_id"]) == 32


# -- health --------------------------------------------------------------------------------------------------------


async def test_readiness_turns_false_when_the_database_goes_away(tmp_root: Path) -> None:
    name = await create_pg_database()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    from authserver.storage.sql.migrate import upgrade

    await asyncio.to_thread(upgrade, url)
    app = create_app(load_settings(environ_for("postgres", url, tmp_root)), passwords=fast_passwords())
    try:
        async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["checks"]["database"] is True
            await drop_pg_database(name)  # terminates the pool's connections and removes the database
            down = await http.get("/readyz")
            assert down.status_code == 503
            assert down.json()["checks"]["database"] is False and down.json()["checks"]["keys"] is True
            assert (await http.get("/healthz")).status_code == 200  # the process still answers
    finally:
        await drop_pg_database(name)


async def test_readiness_turns_false_when_redis_is_unreachable(database_url: str, backend: str, tmp_root: Path) -> None:
    settings = load_settings(environ_for(backend, database_url, tmp_root, AUTHSERVER_CACHE__URL="redis://127.0.0.1:1/0"))
    app = create_app(settings, passwords=fast_passwords())
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        response = await http.get("/readyz")
        assert response.status_code == 503 and response.json()["checks"]["cache"] is False


async def test_sigterm_turns_readiness_false_before_the_server_stops(app: Starlette, http: httpx.AsyncClient) -> None:
    assert (await http.get("/readyz")).status_code == 200
    received: list[int] = []
    original = signal.signal(signal.SIGTERM, lambda signum, frame: received.append(signum))  # stands in for uvicorn
    try:
        restore = install_drain_on_sigterm(app.state, delay=0.05)
        signal.raise_signal(signal.SIGTERM)
        assert app.state.draining is True and received == []  # not yet stopping: draining first
        response = await http.get("/readyz")
        assert response.status_code == 503 and response.json()["checks"]["accepting"] is False
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.01)
        assert received == [signal.SIGTERM]  # then the server's own handler runs
        restore()
    finally:
        signal.signal(signal.SIGTERM, original)
        app.state.draining = False


async def test_opentelemetry_spans_continue_the_callers_trace(
    backend: str, database_url: str, tmp_root: Path, log_stream: io.StringIO
) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = load_settings(environ_for(backend, database_url, tmp_root, AUTHSERVER_OBSERVABILITY__TRACING="true"))
    app = create_app(settings, passwords=fast_passwords())
    async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER) as http:
        services: Services = app.state.services
        await services.events.record("probe", "success")  # outside a request: no span
        exporter.clear()
        headers = await admin_headers(http, services)
        response = await http.post("/admin/api/users", headers={**headers, "traceparent": TRACEPARENT}, json={"username": f"otel-{id(exporter)}"})
        assert response.status_code == 201
    spans = [s for s in exporter.get_finished_spans() if s.context.trace_id == int("4bf92f3577b34da6a3ce929d0e0e4736", 16)]
    assert spans and any(s.parent is not None and s.parent.span_id == int("00f067aa0ba902b7", 16) for s in spans)
    line = next(json.loads(x) for x in log_stream.getvalue().splitlines() if "admin.user_created" in x)
    assert line["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and len(line["span_id"]) == 16
