"""`python -m bench.chaos` (or `bash bench/chaos`): a chaos experiment against a real authserver, judged by the SLO.

One staging server (``bench.servers.Ours``: PostgreSQL + Redis, production=false because experiments are
refused in production, fresh database and Redis prefix, removed at the end) receives the same open-loop
mix twice (``bench.soak``): first a **baseline** of ``--duration`` seconds, then the same load with the
**experiment** switched on through the admin API (``POST /admin/api/chaos``, as an operator would) and
off again afterwards. The two phases are reported side by side: requests, success rate, errors, p95, p99,
and a verdict each against the SLO: errors (anything but 2xx and 429) under ``--max-error-percent`` (1 %)
and p95 under ``--p95-ms`` (500). The exit status is 0 only if both phases meet it: an experiment the
service should absorb (latency, Redis down for machine tokens) passes; one it cannot (edge 5xx) fails,
and the report says by how much.

Experiments (``--experiment``): ``latency`` (``--target database|cache --min-ms --max-ms``),
``error_rate`` (``--target --rate``), ``dependency_down`` (``--target``), ``edge_5xx`` (``--rate``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from bench.servers import Credentials
from bench.soak import Tally, parse_rates, run_mix, start_server

DEFAULT_RATES = "W1=40,W4=40"


def rates(text: str) -> dict[str, float]:
    """Like bench.soak's --rates, but a kind not named is off."""
    return parse_rates("W1=0,W4=0,W6=0,flow=0," + text)


def phase_summary(tallies: dict[str, Tally], *, p95_ms: float, max_error_percent: float) -> dict[str, Any]:
    """All kinds of one phase together: the SLO is about every request, whatever its kind."""
    merged = Tally()
    for tally in tallies.values():
        merged.sent += tally.sent
        merged.ok_latencies += tally.ok_latencies
        merged.throttled += tally.throttled
        merged.errors.update(tally.errors)
        merged.samples += tally.samples[: 3 - len(merged.samples)]
    row = merged.summary()
    errors = sum(row["errors"].values())
    row["success_percent"] = round(100 * row["ok"] / row["sent"], 2) if row["sent"] else 0.0
    row["error_percent"] = round(100 * errors / row["sent"], 2) if row["sent"] else 100.0
    problems = []
    if row["error_percent"] >= max_error_percent:
        problems.append(f"errors {row['error_percent']} % >= {max_error_percent:g} %")
    if row["p95_ms"] is None or row["p95_ms"] >= p95_ms:
        problems.append(f"p95 {row['p95_ms']} ms >= {p95_ms:g} ms")
    row["passed"], row["problems"] = not problems, problems
    return row


def markdown(phases: dict[str, dict[str, Any]]) -> str:
    lines = ["| Phase | sent | 2xx | success % | errors | p50 ms | p95 ms | p99 ms | SLO |", "|---|---:|---:|---:|---|---:|---:|---:|---|"]
    for name, row in phases.items():
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(row["errors"].items())) or "0"
        verdict = "pass" if row["passed"] else "FAIL (" + "; ".join(row["problems"]) + ")"
        lines.append(f"| {name} | {row['sent']} | {row['ok']} | {row['success_percent']} | {errors} | "
                     f"{row['p50_ms']} | {row['p95_ms']} | {row['p99_ms']} | {verdict} |")
    return "\n".join(lines)


def experiment_body(args: argparse.Namespace) -> dict[str, Any]:
    fields = {"experiment": args.experiment, "target": args.target, "min_ms": args.min_ms, "max_ms": args.max_ms, "rate": args.rate}
    body = {k: v for k, v in fields.items() if v is not None}
    if args.experiment == "edge_5xx":
        body.pop("target", None)
    body["duration_seconds"] = int(min(3600, args.duration + 60))  # ends by itself should this run die
    return body


def admin_headers(base_url: str, credentials: Credentials) -> dict[str, str]:
    """An admin access token, taken before the experiment starts (an edge_5xx would refuse /token too)."""
    admin_id, admin_secret = credentials.extra["admin"]
    with httpx.Client(base_url=base_url, timeout=10) as http:
        token = http.post("/token", data={"grant_type": "client_credentials", "scope": "admin"}, auth=(admin_id, admin_secret))
        token.raise_for_status()
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def switch(base_url: str, headers: dict[str, str], body: dict[str, Any] | None) -> dict[str, Any]:
    """Start the experiment (``body``) or stop every experiment (None) through the admin API
    (``/admin/api/chaos`` itself is never faulted)."""
    with httpx.Client(base_url=base_url, timeout=10) as http:
        answer = http.post("/admin/api/chaos", json=body, headers=headers) if body else http.delete("/admin/api/chaos", headers=headers)
    if answer.status_code != 200:
        raise SystemExit(f"the admin API refused the experiment: {answer.status_code} {answer.text}")
    result: dict[str, Any] = answer.json()
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="latency", choices=["latency", "error_rate", "dependency_down", "edge_5xx"])
    parser.add_argument("--target", default="database", choices=["database", "cache"])
    parser.add_argument("--min-ms", type=int, help="latency: shortest injected delay (default 20)")
    parser.add_argument("--max-ms", type=int, help="latency: longest injected delay (default 120)")
    parser.add_argument("--rate", type=float, help="error_rate, edge_5xx: share of calls or requests (default 0.05)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of each phase (default 30)")
    parser.add_argument("--rates", type=rates, default=rates(DEFAULT_RATES),
                        help=f"per-second rates of the bench.soak kinds W1, W4, W6, flow (default {DEFAULT_RATES}; others off)")
    parser.add_argument("--chains", type=int, default=16, help="refresh chains for W6 (default 16)")
    parser.add_argument("--p95-ms", type=float, default=500.0, help="SLO: p95 under this (default 500)")
    parser.add_argument("--max-error-percent", type=float, default=1.0, help="SLO: errors under this share (default 1)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="extra AUTHSERVER_* setting")
    parser.add_argument("--output", help="also write the results as JSON to this path")
    args = parser.parse_args(argv)
    if args.experiment == "latency":
        args.min_ms = 20 if args.min_ms is None else args.min_ms
        args.max_ms = 120 if args.max_ms is None else args.max_ms
    if args.experiment in ("error_rate", "edge_5xx") and args.rate is None:
        args.rate = 0.05
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    body = experiment_body(args)
    server, state = start_server(args, staging=True)
    try:
        assert server.credentials is not None
        print(f"baseline: {args.duration:g} s", file=sys.stderr, flush=True)
        baseline = asyncio.run(run_mix(server.base_url, state, args.rates, seconds=args.duration, progress=max(args.duration, 5)))
        operator = admin_headers(server.base_url, server.credentials)
        running = switch(server.base_url, operator, body)
        print(f"experiment {json.dumps(running['experiments'])}: {args.duration:g} s", file=sys.stderr, flush=True)
        try:
            experiment = asyncio.run(run_mix(server.base_url, state, args.rates, seconds=args.duration,
                                             progress=max(args.duration, 5), prime=False))
        finally:
            switch(server.base_url, operator, None)
    finally:
        server.stop()
    phases = {
        "baseline": phase_summary(baseline, p95_ms=args.p95_ms, max_error_percent=args.max_error_percent),
        f"experiment: {args.experiment}": phase_summary(experiment, p95_ms=args.p95_ms, max_error_percent=args.max_error_percent),
    }
    passed = all(row["passed"] for row in phases.values())
    document = {"experiment": body, "duration_s": args.duration, "rates": args.rates, "settings": server.settings_note,
                "slo": {"p95_ms": args.p95_ms, "max_error_percent": args.max_error_percent}, "phases": phases, "passed": passed}
    if args.output:
        Path(args.output).write_text(json.dumps(document, indent=2))
    print(f"\n## authserver chaos: {json.dumps(body)}, {args.duration:g} s per phase, {server.settings_note}\n")
    print(markdown(phases))
    for name, row in phases.items():
        for sample in row["error_samples"]:
            print(f"- {name}: {sample}")
    print(f"- server log: {server.log_path}")
    print("\nVERDICT: PASSED (the SLO held in both phases)" if passed else "\nVERDICT: FAILED (the SLO did not hold: see the table)")
    return 0 if passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
