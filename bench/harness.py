"""`python -m bench`: measure authserver against its targets, the bare-Starlette ceiling and node-oidc-provider.

Each workload runs for a bounded time after a warm-up; the server's CPU time (from /proc) before and
after gives requests per CPU-second. Rounds alternate between the servers (A B A B …) and the report
takes medians. Results go to bench/results/<timestamp>.json and a Markdown table to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.load import (
    Measurement,
    Request,
    collect_dpop_chains,
    assertion_bodies,
    collect_refresh_tokens,
    dpop_refresh_workload,
    fixed_request,
    flow_workload,
    pin_load_generator,
    run_python,
    run_wrk,
    wrk_available,
)
from bench.servers import (
    API_SCOPES,
    UVICORN_FLAGS,
    Baseline,
    Credentials,
    Ours,
    Peer,
    Server,
    cpu_seconds,
    make_workdir,
    memory_mb,
    thread_cpu_seconds,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
WORKLOADS = {
    "W1": "client credentials (tokens)",
    "W2": "JWKS",
    "W3": "discovery",
    "W4": "introspection (valid token)",
    "W5": "code + PKCE flow with sign-in (flows)",
    "W6": "refresh with rotation (refreshes)",
    "W8": "DPoP-bound refresh, public client (refreshes)",
    "W7": "client credentials, private_key_jwt (tokens)",
}
# Per server CPU-second, one worker. Peer targets are ratios ours/peer.
TARGETS: dict[str, dict[str, float]] = {
    "W1": {"per_cpu": 4000, "peer_ratio": 1.0},
    "W2": {"peer_ratio": 1.0},
    "W3": {"peer_ratio": 1.5},
    "W4": {"per_cpu": 4000},
    "W6": {"per_cpu": 1500},
}
RSS_TARGET_MB = 120


@dataclass
class Sample:
    server: str
    workload: str
    round: int
    ok: int
    errors: int
    seconds: float
    cpu_seconds: float
    rate: float
    per_cpu: float
    p50_ms: float | None
    p99_ms: float | None
    steps_ms: dict[str, float]
    # W5 on authserver: CPU of the worker's main thread, i.e. everything but the argon2 pool thread.
    main_thread_cpu_seconds: float | None = None


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.use_wrk = wrk_available() and not args.python_load
        self.samples: list[Sample] = []
        self.unavailable: dict[tuple[str, str], str] = {}

    # --- preparing each server's requests ---------------------------------------------------------

    def probe(self, server: Server) -> dict[str, Request]:
        """Build each workload's request and check once that it really succeeds (no silent 4xx)."""
        creds = server.credentials
        assert creds is not None
        http = httpx.Client(base_url=server.base_url, timeout=10)
        requests: dict[str, Request] = {}
        w1 = Request("POST", "/token", body="grant_type=client_credentials&scope=" + "+".join(API_SCOPES[:2]).replace(":", "%3A"),
                     auth=Credentials.basic(creds.service_id, creds.service_secret))
        answer = http.post("/token", content=w1.body, headers={"Authorization": w1.auth, "Content-Type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 200 and "access_token" in answer.json(), answer.text
        requests["W1"] = w1
        w7 = Request("POST", "/token", body=w1.body)
        [probe_body] = assertion_bodies(creds.extra["pkjwt"], w1.body, 1)
        answer = http.post("/token", content=probe_body, headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 200 and "access_token" in answer.json(), answer.text
        requests["W7"] = w7
        requests["W2"] = Request("GET", "/jwks")
        requests["W3"] = Request("GET", "/.well-known/openid-configuration")
        for key in ("W2", "W3"):
            answer = http.get(requests[key].path)
            assert answer.status_code == 200, answer.text
        token = self._introspectable_token(http, server, w1)
        w4 = Request("POST", "/introspect", body=f"token={token}", auth=Credentials.basic(creds.introspector_id, creds.introspector_secret))
        answer = http.post("/introspect", content=w4.body, headers={"Authorization": w4.auth, "Content-Type": "application/x-www-form-urlencoded"})
        if answer.status_code == 404:
            self.unavailable[(server.name, "W4")] = "not available (POST /introspect returns 404)"
        elif answer.status_code != 200 or answer.json().get("active") is not True:
            self.unavailable[(server.name, "W4")] = f"n/a (introspection answered {answer.status_code} {answer.text[:120]})"
        else:
            requests["W4"] = w4
        http.close()
        return requests

    def _introspectable_token(self, http: httpx.Client, server: Server, w1: Request) -> str:
        creds = server.credentials
        assert creds is not None
        if isinstance(server, Peer):
            # oidc-provider refuses to introspect JWTs ("Structured JWT Tokens cannot be introspected"):
            # its W4 uses an opaque client-credentials token (no resource indicator), a store lookup.
            auth = Credentials.basic(creds.extra["opaque_id"], creds.extra["opaque_secret"])
        else:
            auth = w1.auth
        answer = http.post("/token", content=w1.body, headers={"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"})
        assert answer.status_code == 200, answer.text
        return str(answer.json()["access_token"])

    # --- measuring ------------------------------------------------------------------------------------

    def measure(self, server: Server, workload: str, request: Request | None, round_no: int) -> None:
        args = self.args
        creds = server.credentials
        main_thread: float | None = None
        if workload == "W6":
            assert request is not None and creds is not None
            seeds = asyncio.run(collect_refresh_tokens(server.base_url, creds, 2 * args.chains))
            warm, measured = seeds[: args.chains], seeds[args.chains :]
            self._run(server, Request("POST", "/token", auth=request.auth, tokens=warm), args.warmup, args.connections)
            before = cpu_seconds(server.pid)
            with self._profiling(server, workload, round_no):
                result = self._run(server, Request("POST", "/token", auth=request.auth, tokens=measured), args.duration, args.connections)
        elif workload == "W8":
            # A public SPA's DPoP-bound chains (RFC 9449): a fresh proof per request, made on the load core.
            assert creds is not None
            chains = asyncio.run(collect_dpop_chains(server.base_url, creds, 2 * args.chains))
            concurrency = max(1, min(args.connections, args.chains))
            warm = dpop_refresh_workload(chains[: args.chains], creds, server.base_url, concurrency=concurrency)
            asyncio.run(run_python(server.base_url, warm, seconds=args.warmup, concurrency=concurrency))
            measured = dpop_refresh_workload(chains[args.chains :], creds, server.base_url, concurrency=concurrency)
            before = cpu_seconds(server.pid)
            with self._profiling(server, workload, round_no):
                result = asyncio.run(run_python(server.base_url, measured, seconds=args.duration, concurrency=concurrency))
        elif workload == "W7":
            # Each assertion works once: a pool per run, sized for the expected rate (unused ones are wasted,
            # a pool that runs out shows up as errors).
            assert request is not None and creds is not None
            def pool(seconds: float) -> Request:
                count = max(200, int(args.assertion_rate * seconds))
                return Request("POST", "/token", bodies=assertion_bodies(creds.extra["pkjwt"], request.body, count))
            self._run(server, pool(args.warmup), args.warmup, args.connections)
            measured = pool(args.duration)
            before = cpu_seconds(server.pid)
            with self._profiling(server, workload, round_no):
                result = self._run(server, measured, args.duration, args.connections)
        elif workload == "W5":
            assert creds is not None
            one = flow_workload(creds)
            asyncio.run(run_python(server.base_url, one, seconds=args.warmup, concurrency=args.flow_concurrency))
            before = cpu_seconds(server.pid)
            main_before = thread_cpu_seconds(server.pid, server.pid) if isinstance(server, Ours) else None
            with self._profiling(server, workload, round_no):
                result = asyncio.run(run_python(server.base_url, one, seconds=args.duration, concurrency=args.flow_concurrency))
            if main_before is not None:
                main_thread = thread_cpu_seconds(server.pid, server.pid) - main_before
        else:
            assert request is not None
            self._run(server, request, args.warmup, args.connections)
            before = cpu_seconds(server.pid)
            with self._profiling(server, workload, round_no):
                result = self._run(server, request, args.duration, args.connections)
        used = cpu_seconds(server.pid) - before
        if result.ok == 0:
            raise RuntimeError(f"no request succeeded ({result.errors} errors)")
        self.samples.append(Sample(
            server=server.name, workload=workload, round=round_no, ok=result.ok, errors=result.errors,
            seconds=round(result.seconds, 3), cpu_seconds=round(used, 3), rate=round(result.rate, 1),
            per_cpu=round(result.ok / used, 1) if used > 0 else 0.0,
            p50_ms=_round(result.p50_ms), p99_ms=_round(result.p99_ms), steps_ms={k: round(v, 2) for k, v in result.steps_ms.items()},
            main_thread_cpu_seconds=round(main_thread, 3) if main_thread is not None else None,
        ))
        print(f"  round {round_no} {server.name:14} {workload}: {result.rate:9.1f}/s  {self.samples[-1].per_cpu:9.1f} per CPU-s"
              f"  errors {result.errors}", file=sys.stderr, flush=True)

    @contextlib.contextmanager
    def _profiling(self, server: Server, workload: str, round_no: int) -> Iterator[None]:
        """With --profile DIR, py-spy samples authserver during the measured window (collapsed stacks).

        The sampler runs on the load generator's core; it costs the server a little CPU, so figures from a
        profiled run are not quoted.
        """
        if not self.args.profile or not isinstance(server, Ours):
            yield
            return
        directory = Path(self.args.profile)
        directory.mkdir(parents=True, exist_ok=True)
        output = directory / f"{workload}-round{round_no}.txt"
        spy = subprocess.Popen(
            ["py-spy", "record", "--pid", str(server.pid), "--rate", "250", "--format", "raw", "--nonblocking",
             "--output", str(output), "--duration", str(max(1, int(self.args.duration)))],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, executable=shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"),
        )
        try:
            yield
        finally:
            try:
                spy.wait(timeout=self.args.duration + 30)
            except subprocess.TimeoutExpired:
                spy.kill()
            print(f"  profile: {output}", file=sys.stderr, flush=True)

    def _run(self, server: Server, request: Request, seconds: float, connections: int) -> Measurement:
        if request.tokens is not None:
            # Twice as many chains as connections: wrk builds some requests before the previous
            # answer (with its new token) is in, and an empty pool would break a chain.
            connections = max(1, min(connections, len(request.tokens) // 2))
        if self.use_wrk and seconds >= 1:
            return run_wrk(server.base_url, request, seconds=seconds, connections=connections, workdir=self.workdir)
        return asyncio.run(run_python(server.base_url, fixed_request(request), seconds=seconds, concurrency=connections))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def argon2_verify_cpu() -> float:
    """CPU seconds of one argon2id verification with the production parameters (m=19 MiB, t=2, p=1)."""
    from authserver.accounts.passwords import Passwords

    passwords = Passwords()
    hashed = passwords._hasher.hash("correct horse battery staple")
    began = time.process_time()
    for _ in range(10):
        passwords._hasher.verify(hashed, "correct horse battery staple")
    return (time.process_time() - began) / 10


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str] = {"python": platform.python_version()}
    for command, name in ((["node", "--version"], "node"), (["wrk", "--version"], "wrk")):
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=5)
            versions[name] = (out.stdout or out.stderr).split("\n")[0].strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    # Other work on the machine inflates CPU time per request (shared caches, steal): recorded, not hidden.
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    return {"cpu": model, "cpus": os.cpu_count(), "kernel": platform.release(), "versions": versions, "loadavg_at_end": load}


# --- the report -------------------------------------------------------------------------------------------

def summarise(samples: list[Sample], unavailable: dict[tuple[str, str], str], servers: list[str]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for workload in [*WORKLOADS, "ceiling"]:
        row: dict[str, Any] = {}
        for server in servers:
            mine = [s for s in samples if s.server == server and s.workload == workload]
            if (server, workload) in unavailable:
                row[server] = {"unavailable": unavailable[(server, workload)]}
            elif mine:
                row[server] = {
                    "rate": statistics.median(s.rate for s in mine),
                    "per_cpu": statistics.median(s.per_cpu for s in mine),
                    "p50_ms": statistics.median(s.p50_ms for s in mine if s.p50_ms is not None) if any(s.p50_ms for s in mine) else None,
                    "p99_ms": statistics.median(s.p99_ms for s in mine if s.p99_ms is not None) if any(s.p99_ms for s in mine) else None,
                    "errors": sum(s.errors for s in mine),
                    "rounds": len(mine),
                }
                if workload == "W5":
                    names = {name for s in mine for name in s.steps_ms}
                    row[server]["steps_ms"] = {n: round(statistics.median(s.steps_ms.get(n, 0) for s in mine), 2) for n in sorted(names)}
                    main = [1000 * s.main_thread_cpu_seconds / s.ok for s in mine if s.main_thread_cpu_seconds is not None and s.ok]
                    if main:
                        row[server]["main_thread_ms_per_flow"] = round(statistics.median(main), 2)
                        row[server]["cpu_ms_per_flow"] = round(statistics.median(1000 * s.cpu_seconds / s.ok for s in mine if s.ok), 2)
        summary[workload] = row
    return summary


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def markdown(summary: dict[str, Any], extra: dict[str, Any]) -> str:
    ours, peer = "authserver", "oidc-provider"
    ceiling = summary.get("ceiling", {}).get("baseline", {}).get("per_cpu")
    lines = [
        "| Workload | authserver /s | per CPU-s | p50 ms | p99 ms | % of ceiling | oidc-provider per CPU-s | ours/peer | target | met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for workload, title in WORKLOADS.items():
        row = summary.get(workload, {})
        mine, theirs = row.get(ours, {}), row.get(peer)
        target = TARGETS.get(workload, {})
        target_text = ", ".join(
            ([f"≥ {target['per_cpu']:,.0f}/CPU-s"] if "per_cpu" in target else [])
            + ([f"≥ {target['peer_ratio']:g}× peer"] if "peer_ratio" in target else [])
        ) or "–"
        if "unavailable" in mine:
            lines.append(f"| {workload} {title} | {mine['unavailable']} | | | | | | | {target_text} | – |")
            continue
        peer_text, ratio = "n/a", None
        if theirs is None:
            peer_text = "not run"
        elif "unavailable" in theirs:
            peer_text = theirs["unavailable"]
        elif theirs.get("per_cpu"):
            peer_text = fmt(theirs["per_cpu"])
            ratio = mine.get("per_cpu", 0) / theirs["per_cpu"] if mine.get("per_cpu") else None
        met: list[bool] = []
        if "per_cpu" in target and mine.get("per_cpu") is not None:
            met.append(mine["per_cpu"] >= target["per_cpu"])
        if "peer_ratio" in target and ratio is not None:
            met.append(ratio > target["peer_ratio"] if target["peer_ratio"] == 1.0 else ratio >= target["peer_ratio"])
        met_text = ("yes" if all(met) else "**no**") if met else "–"
        share = f"{100 * mine['per_cpu'] / ceiling:.0f}%" if ceiling and mine.get("per_cpu") else "–"
        lines.append(
            f"| {workload} {title} | {fmt(mine.get('rate'))} | {fmt(mine.get('per_cpu'))} | {fmt(mine.get('p50_ms'), 1)} | "
            f"{fmt(mine.get('p99_ms'), 1)} | {share} | {peer_text} | {fmt(ratio, 2) + '×' if ratio else '–'} | {target_text} | {met_text} |"
        )
    lines.append(f"| ceiling: bare Starlette JSON GET | {fmt(summary.get('ceiling', {}).get('baseline', {}).get('rate'))} | "
                 f"{fmt(ceiling)} | | | 100% | | | | |")
    lines.append("")
    memory = extra.get("memory", {})
    for name, values in memory.items():
        if values:
            lines.append(f"- {name}: RSS after the run {values.get('rss_mb', 0):.1f} MB, peak {values.get('peak_rss_mb', 0):.1f} MB"
                         + (f" (target ≤ {RSS_TARGET_MB} MB: {'yes' if values.get('rss_mb', 0) <= RSS_TARGET_MB else '**no**'})" if name == ours else ""))
    w5 = summary.get("W5", {}).get(ours, {})
    w5_peer = summary.get("W5", {}).get(peer, {})
    if w5.get("main_thread_ms_per_flow") is not None:
        whole = w5["cpu_ms_per_flow"]
        rest = w5["main_thread_ms_per_flow"]
        line = (f"- W5 where the time goes: {whole:.1f} ms CPU per flow, of which the worker's main thread (everything "
                f"but the password hash) {rest:.1f} ms and the argon2 pool thread {whole - rest:.1f} ms")
        if w5_peer.get("per_cpu"):
            peer_flow = 1000 / w5_peer["per_cpu"]
            line += (f"; the peer's whole flow {peer_flow:.1f} ms (target: everything but the hash below it: "
                     f"{'yes' if rest < peer_flow else '**no**'})")
        lines.append(line)
    if w5.get("per_cpu") and extra.get("argon2_verify_ms"):
        share = w5["per_cpu"] * extra["argon2_verify_ms"] / 1000
        lines.append(f"- W5: one argon2id verification costs {extra['argon2_verify_ms']:.1f} ms CPU; at {w5['per_cpu']:.1f} flows per CPU-s "
                     f"that is {100 * share:.0f}% of the server's CPU. Client-side time per step (ms, median of rounds): "
                     + ", ".join(f"{k} {v:.1f}" for k, v in w5.get("steps_ms", {}).items()))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--backend", choices=["postgres", "sqlite"], help="authserver's storage (default postgres; sqlite with --quick)")
    parser.add_argument("--duration", type=float, help="seconds measured per workload (default 10)")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up per workload (default 3)")
    parser.add_argument("--rounds", type=int, help="rounds per server, alternating (default 3)")
    parser.add_argument("--connections", type=int, default=32, help="concurrent connections for wrk workloads")
    parser.add_argument("--flow-concurrency", type=int, default=8, help="concurrent sign-in flows in W5")
    parser.add_argument("--chains", type=int, help="independent refresh chains in W6 (default 64)")
    parser.add_argument("--workloads", default="W1,W2,W3,W4,W5,W6,W7,W8", help="comma-separated subset")
    parser.add_argument("--assertion-rate", type=int, help="W7: signed assertions made per measured second (default 8000; 2000 with --quick)")
    parser.add_argument("--no-peer", action="store_true", help="skip node-oidc-provider")
    parser.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk is installed")
    parser.add_argument("--quick", action="store_true", help="smoke run: SQLite, 1 s per workload, one round, no peer")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra AUTHSERVER_* setting for authserver, e.g. AUTHSERVER_DATABASE__POOL_PRE_PING=false")
    parser.add_argument("--output", help="JSON results path (default bench/results/<timestamp>.json)")
    parser.add_argument("--profile", metavar="DIR", help="sample authserver with py-spy during each measured window (collapsed stacks in DIR)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.backend = args.backend or ("sqlite" if quick else "postgres")
    args.duration = args.duration if args.duration is not None else (1.0 if quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (0.3 if quick else 3.0)
    args.rounds = args.rounds or (1 if quick else 3)
    args.chains = args.chains or (8 if quick else 64)
    args.assertion_rate = args.assertion_rate or (2000 if quick else 8000)
    if quick:
        args.no_peer = True
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    pin_load_generator()
    workdir = make_workdir()
    bench = Bench(args, workdir)
    ours = Ours(workdir, backend=args.backend, extra_env=dict(item.split("=", 1) for item in args.env))
    baseline = Baseline(workdir)
    peer: Peer | None = None
    servers: list[Server] = [ours]
    peer_note = None
    if not args.no_peer:
        peer_note = Peer.available()
        if peer_note is None:
            peer = Peer(workdir)
            servers.append(peer)
    started: list[Server] = []
    extra: dict[str, Any] = {"memory": {}}
    try:
        for server in [*servers, baseline]:
            print(f"starting {server.name} …", file=sys.stderr, flush=True)
            server.start()
            started.append(server)
        requests = {server.name: bench.probe(server) for server in servers}
        for round_no in range(1, args.rounds + 1):
            for server in servers:
                for workload in workloads:
                    if (server.name, workload) in bench.unavailable:
                        continue
                    request = requests[server.name].get(workload)
                    if workload == "W6":  # the web client refreshes; tokens are seeded per measurement
                        creds = server.credentials
                        assert creds is not None
                        request = Request("POST", "/token", auth=Credentials.basic(creds.web_id, creds.web_secret))
                    try:
                        bench.measure(server, workload, request, round_no)
                    except Exception as error:
                        if server is ours:
                            raise
                        bench.unavailable[(server.name, workload)] = f"n/a ({type(error).__name__}: {str(error)[:100]})"
            bench.measure(baseline, "ceiling", Request("GET", "/json"), round_no)
        for server in started:
            extra["memory"][server.name] = memory_mb(server.pid)
    finally:
        for server in started:
            server.stop()
    if "W5" in workloads:
        extra["argon2_verify_ms"] = argon2_verify_cpu() * 1000
    names = [s.name for s in servers] + ["baseline"]
    summary = summarise(bench.samples, bench.unavailable, names)
    if peer_note:
        extra["peer"] = peer_note
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = Path(args.output) if args.output else RESULTS_DIR / f"{stamp}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    settings = {
        "authserver": ours.settings_note,
        "uvicorn": "one worker, " + " ".join(UVICORN_FLAGS),
        "load_generator": "wrk -t1 (bench/wrk.lua)" if bench.use_wrk else "python asyncio + httpx",
        "pinning": "servers on CPU 0, load generator on CPU 1; PostgreSQL and Redis unpinned",
        "duration_s": args.duration, "warmup_s": args.warmup, "rounds": args.rounds,
        "connections": args.connections, "flow_concurrency": args.flow_concurrency, "refresh_chains": args.chains,
    }
    document = {
        "timestamp": stamp, "machine": machine(), "settings": settings, "summary": summary,
        "unavailable": {f"{k[0]} {k[1]}": v for k, v in bench.unavailable.items()},
        "extra": extra, "samples": [asdict(s) for s in bench.samples],
    }
    output.write_text(json.dumps(document, indent=2))
    print(f"\n## authserver bench {stamp}\n")
    print(f"Settings: {settings['authserver']}; uvicorn {settings['uvicorn']}; load: {settings['load_generator']}; "
          f"{args.rounds} round(s) × {args.duration:g} s after {args.warmup:g} s warm-up; medians.\n")
    if peer_note:
        print(f"Peer not run: {peer_note}\n")
    print(markdown(summary, extra))
    print(f"- load average at the end: {' '.join(document['machine'].get('loadavg_at_end', []))} (other work on the machine inflates CPU per request)")
    print(f"\nResults: {output}")
    return 0
