"""The benchmark harness runs end to end (`python -m bench --quick`: SQLite, ~1 s per workload, no peer),
W7 (private_key_jwt client credentials, one fresh assertion per request) included.

Only that it works is checked, never how fast: every workload completes requests without errors, and
the results file has the shape docs/performance.md describes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quick_bench_runs_every_workload(tmp_path: Path) -> None:
    output = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=180,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert "| W1 client credentials" in completed.stdout
    results = json.loads(output.read_text())
    samples = {s["workload"]: s for s in results["samples"] if s["server"] == "authserver"}
    for workload in ("W1", "W2", "W3", "W5", "W6", "W7", "W8"):
        assert samples[workload]["ok"] > 0, samples[workload]
        assert samples[workload]["errors"] == 0, samples[workload]
        assert samples[workload]["cpu_seconds"] > 0
    # Introspection is either measured or reported as not available, never silently missing.
    assert "W4" in samples or "authserver W4" in results["unavailable"]
    assert results["summary"]["ceiling"]["baseline"]["per_cpu"] > 0
    assert results["extra"]["memory"]["authserver"]["rss_mb"] > 0
