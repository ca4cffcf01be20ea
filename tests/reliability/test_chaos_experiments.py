"""Run-time chaos experiments (authserver/chaos.py): switched on and off through the admin API and the CLI,
applied by every instance, ended by their duration, refused in production; injected faults take the real
503 paths. On a database of the test's own (a dependency_down must not reach other tests' apps)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from authserver.admin import operations
from authserver.admin.service import CLI
from authserver.admin.validation import AdminError
from authserver.app import build_services
from authserver.cli import main
from authserver.clock import FrozenClock
from authserver.services import Services
from authserver.settings import load_settings
from tests.conftest import environ_for
from tests.support.admin import admin_headers
from tests.support.apps import production_env, running_app
from tests.support.factories import make_client

URL = "/admin/api/chaos"


@contextlib.asynccontextmanager
async def two_instances(own_database: str, tmp_path: Path) -> AsyncIterator[tuple[FrozenClock, httpx.AsyncClient, Services, httpx.AsyncClient, Services]]:
    clock = FrozenClock()
    async with running_app(own_database, tmp_path, clock=clock) as (_, a, http_a), \
            running_app(own_database, tmp_path, clock=clock) as (_, b, http_b):
        yield clock, http_a, a, http_b, b


async def test_experiments_switch_on_and_off_through_the_admin_api(own_database: str, tmp_path: Path) -> None:
    async with two_instances(own_database, tmp_path) as (clock, http, a, other, b):
        headers = await admin_headers(http, a)
        assert (await http.get(URL, headers=headers)).json()["experiments"] == []
        # HTTP 5xx at the edge, on both instances; the switch itself stays reachable.
        started = await http.post(URL, headers=headers, json={"experiment": "edge_5xx", "rate": 1, "duration_seconds": 60})
        assert started.status_code == 200, started.text
        assert started.json()["experiments"][0]["experiment"] == "edge_5xx"
        await b.chaos.refresh()  # what each instance's background refresh does every second
        for client in (http, other):
            assert (await client.get("/jwks")).status_code == 503
        assert (await http.get(URL, headers=headers)).status_code == 200
        assert (await http.delete(URL, headers=headers)).json()["experiments"] == []
        await b.chaos.refresh()
        for client in (http, other):
            assert (await client.get("/jwks")).status_code == 200

        # The database down: readiness and database work answer 503, never a token; static data still 200.
        down = await http.post(URL, headers=headers, json={"experiment": "dependency_down", "target": "database"})
        assert down.status_code == 200, down.text
        assert (await http.get("/readyz")).status_code == 503
        assert (await http.get("/jwks")).status_code == 200
        stopped = await http.delete(URL, headers=headers, params={"experiment": "dependency_down"})
        assert stopped.status_code == 200 and stopped.json()["experiments"] == []
        assert (await http.get("/readyz")).status_code == 200

        # Latency in a random range, and error rates, as drawn for one call.
        await http.post(URL, headers=headers, json={"experiment": "latency", "target": "cache", "min_ms": 20, "max_ms": 40})
        await http.post(URL, headers=headers, json={"experiment": "error_rate", "target": "database", "rate": 1})
        delays = [a.chaos.draw("cache")[0] for _ in range(50)]  # type: ignore[union-attr]
        assert all(0.02 <= d <= 0.04 for d in delays) and len(set(delays)) > 1
        assert a.chaos.draw("database") == (0.0, True)  # type: ignore[union-attr]
        assert len((await http.get(URL, headers=headers)).json()["experiments"]) == 2

        # Every experiment ends by itself (default 300 s).
        clock.advance(301)
        assert a.chaos.running() == [] and (await http.get("/readyz")).status_code == 200  # type: ignore[union-attr]
        events = await a.events.query(event="chaos", limit=20)
        assert {e["outcome"] for e in events} == {"on", "off"}


async def test_cache_down_fails_sign_in_closed_and_keeps_machine_tokens(own_database: str, tmp_path: Path) -> None:
    async with two_instances(own_database, tmp_path) as (_clock, http, a, _other, _b):
        headers = await admin_headers(http, a)
        client = await make_client(a, grant_types=["client_credentials"])
        assert (await http.post(URL, headers=headers, json={"experiment": "dependency_down", "target": "cache"})).status_code == 200
        try:
            token = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret or ""))
            assert token.status_code == 200, token.text
            assert (await http.get("/account")).status_code == 503
        finally:
            await a.chaos.stop()  # type: ignore[union-attr]


async def test_bad_input_is_a_4xx_and_no_token_is_refused(own_database: str, tmp_path: Path) -> None:
    async with two_instances(own_database, tmp_path) as (_clock, http, a, _other, _b):
        headers = await admin_headers(http, a)
        bad = [
            {}, {"experiment": "meltdown"}, {"experiment": "latency", "target": "database"},
            {"experiment": "latency", "target": "database", "min_ms": 50, "max_ms": 10},
            {"experiment": "latency", "target": "disk", "max_ms": 10}, {"experiment": "error_rate", "target": "cache"},
            {"experiment": "error_rate", "target": "cache", "rate": 0}, {"experiment": "error_rate", "target": "cache", "rate": 2},
            {"experiment": "error_rate", "target": "cache", "rate": True}, {"experiment": "edge_5xx", "rate": 0.5, "target": "cache"},
            {"experiment": "dependency_down"}, {"experiment": "dependency_down", "target": "cache", "rate": 0.5},
            {"experiment": "dependency_down", "target": "cache", "duration_seconds": 7200}, {"experiment": "edge_5xx", "rate": 1, "x": 1},
            ["edge_5xx"],
        ]
        for body in bad:
            response = await http.post(URL, headers=headers, json=body)
            assert response.status_code == 400 and response.json()["error"] == "invalid_request", (body, response.text)
        assert (await http.delete(URL, headers=headers, params={"experiment": "nope"})).status_code == 400
        assert (await http.delete(URL, headers=headers, params={"other": "1"})).status_code == 400
        assert (await http.post(URL, headers={**headers, "Content-Type": "application/json"}, content=b"[")).status_code == 400
        assert (await http.get(URL)).status_code == 401
        assert (await http.post(URL, json={"experiment": "edge_5xx", "rate": 1})).status_code == 401
        assert a.chaos.running() == []  # type: ignore[union-attr]


async def test_refused_in_production(tmp_path: Path) -> None:
    env = production_env(AUTHSERVER_DATABASE__URL="postgresql+asyncpg://postgres@127.0.0.1:5432/none")
    services = build_services(load_settings(env))
    try:
        assert services.chaos is None  # no hook installed at all
        for call in (operations.chaos_status(services), operations.start_chaos(services, {"experiment": "edge_5xx", "rate": 1}, actor=CLI)):
            with pytest.raises(AdminError) as refused:
                await call
            assert refused.value.status == 403
    finally:
        await services.close()


def test_chaos_cli(own_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    backend = "postgres" if own_database.startswith("postgresql") else "sqlite"
    for key, value in environ_for(backend, own_database, tmp_path).items():
        monkeypatch.setenv(key, value)
    assert main(["chaos", "start", "latency", "--target", "database", "--min-ms", "1", "--max-ms", "5", "--duration", "60", "--json"]) == 0
    started = json.loads(capsys.readouterr().out)
    assert started["experiments"][0]["max_ms"] == 5
    assert main(["chaos", "status"]) == 0
    assert "latency" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="rate"):
        main(["chaos", "start", "error_rate", "--target", "cache"])
    assert main(["chaos", "stop", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["experiments"] == []
