"""Several uvicorn workers on one host (Redis shared): /metrics sums every worker (prometheus multiprocess mode),
and SIGTERM stops the server cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REDIS_URL, RUN_ID
from tests.integration.test_admin_api_fuzz import free_port


def healthz_count(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "authserver_http_requests_total" and sample.labels.get("route") == "/healthz":
                return sample.value
    return 0.0


def test_two_workers_report_one_sum(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999.db").write_bytes(b"stale")  # left by a previous run: removed at start
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "AUTHSERVER_SERVER__ISSUER": base,
        "AUTHSERVER_SERVER__PORT": str(port),
        "AUTHSERVER_SERVER__WORKERS": "2",
        "AUTHSERVER_SERVER__DEMO": "false",
        "AUTHSERVER_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'mw.db'}",
        "AUTHSERVER_SECURITY__KEY_FILE": str(tmp_path / "secrets.json"),
        "AUTHSERVER_CACHE__URL": REDIS_URL,
        "AUTHSERVER_CACHE__KEY_PREFIX": f"authserver-test-{RUN_ID}-mw:",
        "AUTHSERVER_OBSERVABILITY__LOG_LEVEL": "WARNING",
    }
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "authserver", "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        else:
            pytest.fail("server did not start: " + (tmp_path / "server.log").read_text())
        before = healthz_count(httpx.get(f"{base}/metrics", timeout=5).text)
        sent = 0
        # New connections until both workers have answered some (each writes its own counter file).
        while sent < 30 or (len(list(metrics_dir.glob("counter_*.db"))) < 2 and sent < 300):
            assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
            sent += 1
        assert len(list(metrics_dir.glob("counter_*.db"))) == 2
        after = healthz_count(httpx.get(f"{base}/metrics", timeout=5).text)
        assert after - before == sent  # whichever worker answers the scrape, it reports the sum
        assert not (metrics_dir / "counter_999.db").exists()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
        log.close()
