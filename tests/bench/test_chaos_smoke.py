"""`python -m bench.chaos` works end to end against a real staging server, in a few seconds: the baseline
meets the SLO, an edge-5xx experiment at rate 0.5 visibly breaks it (so the experiment really ran and was
switched through the admin API), and the verdict and exit status say so. The latency bound is generous
here (shared machine); the errors are what is checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_chaos_run_reports_both_phases_and_a_verdict(tmp_path: Path) -> None:
    output = tmp_path / "chaos.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--experiment", "edge_5xx", "--rate", "0.5", "--duration", "2",
         "--rates", "W1=10,W4=10", "--p95-ms", "5000", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 1, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "| baseline |" in completed.stdout and "VERDICT: FAILED" in completed.stdout
    results = json.loads(output.read_text())
    baseline, experiment = results["phases"]["baseline"], results["phases"]["experiment: edge_5xx"]
    assert baseline["passed"] and baseline["error_percent"] == 0 and baseline["ok"] > 0
    assert not experiment["passed"] and experiment["errors"].get("503", 0) > 0
    assert experiment["p99_ms"] is not None and 0 < experiment["success_percent"] < 100
    assert results["experiment"]["experiment"] == "edge_5xx" and results["passed"] is False


def test_the_phase_verdict_applies_the_slo() -> None:
    from bench.chaos import phase_summary
    from bench.soak import Tally

    fine, slow, failing = Tally(), Tally(), Tally()
    for _ in range(200):
        fine.record("ok", 0.01)
        slow.record("ok", 0.9)
        failing.record("ok", 0.01)
    for _ in range(3):
        failing.record("503", 0.01)
        fine.record("429", 0.01)  # throttling is not an error
    for tally in (fine, slow, failing):
        tally.sent = len(tally.ok_latencies) + tally.throttled + sum(tally.errors.values())
    assert phase_summary({"W1": fine}, p95_ms=500, max_error_percent=1)["passed"]
    assert phase_summary({"W1": slow}, p95_ms=500, max_error_percent=1)["problems"][0].startswith("p95")
    assert phase_summary({"W1": failing}, p95_ms=500, max_error_percent=1)["problems"][0].startswith("errors")
