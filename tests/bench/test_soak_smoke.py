"""The sustained-load run works end to end (`python -m bench.soak`, a few seconds at a low rate).

As for the benchmark smoke test, only that it works is checked: every kind of request succeeds without
errors and the results file has the documented shape. The latency verdict is given a generous bound here
(the machine is shared); `bash bench/soak` applies the real one (p95 < 500 ms).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_short_soak_runs_every_kind_without_errors(tmp_path: Path) -> None:
    output = tmp_path / "soak.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--duration", "4", "--rates", "W1=5,W4=5,W6=3,flow=0.5", "--chains", "4",
         "--p95-ms", "5000", "--progress", "2", "--output", str(output)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "| W6 refresh with rotation |" in completed.stdout and "PASSED" in completed.stdout
    results = json.loads(output.read_text())
    assert results["passed"] is True and results["problems"] == []
    for kind in ("W1", "W4", "W6", "flow"):
        row = results["summary"][kind]
        assert row["ok"] > 0 and row["errors"] == {}, row
        assert row["p50_ms"] is not None and row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    assert results["server"]["cpu_seconds"] > 0


def test_the_verdict_counts_every_error_but_429_and_the_p95() -> None:
    from bench.soak import Tally, verdict

    fine, throttled, failing, slow = Tally(), Tally(), Tally(), Tally()
    for tally, outcome, latency in ((fine, "ok", 0.01), (throttled, "429", 0.01), (failing, "503", 0.01), (slow, "ok", 0.9)):
        for _ in range(20):
            tally.record("ok", 0.01)
            tally.record(outcome, latency)
    summary = {kind: t.summary() for kind, t in zip(("W1", "W4", "W6", "flow"), (fine, throttled, failing, slow), strict=True)}
    problems = verdict(summary, 500)
    assert summary["W4"]["throttled_429"] == 20
    assert [p.split(":")[0] for p in problems] == ["W6", "flow"], problems
