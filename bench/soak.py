"""`python -m bench.soak` (or `bash bench/soak`): a sustained, open-loop mix against one authserver.

The server is started as the benchmark starts it (``bench.servers.Ours``: production mode, PostgreSQL +
Redis, one uvicorn worker pinned to CPU 0, a fresh database and Redis prefix, dropped at the end). The load
generator runs on CPU 1 and sends each kind of request at a fixed rate for ``--duration`` seconds, whether
or not the earlier answers have come back (open loop): a slow server cannot slow the load down, and each
latency is measured from the moment the request was *due*, so queueing shows up in the percentiles.

Kinds (rates per second, ``--rates``):

- ``W1`` client credentials at /token;
- ``W4`` introspection of the newest W1 token (must answer ``active: true``);
- ``W6`` refresh with rotation, over refresh chains seeded by sign-in flows (each answer's token goes back
  to the pool);
- ``flow`` a whole sign-in: /authorize, the sign-in form, the redirects, the code at /token (its refresh
  token joins the W6 pool).

The report gives, per kind: requests, 2xx, 429s, errors by status (or exception), p50/p95/p99 of the 2xx
answers. The exit status is 0 only if there was no error other than 429 and every kind's p95 is under
``--p95-ms`` (500 by default). The abuse limits are lifted as in the benchmark (all load comes from one
address), so a 429 means a limit set with ``--env``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.load import collect_refresh_tokens, no_cookies, pin_load_generator, sign_in_flow
from bench.servers import API_SCOPES, Credentials, Ours, cpu_seconds, make_workdir, memory_mb

KINDS = {
    "W1": "client credentials",
    "W4": "introspection",
    "W6": "refresh with rotation",
    "flow": "sign-in flow (code + PKCE)",
}
# What the two cores hold with room to spare next to PostgreSQL and Redis (bench on this machine: W1 and W4
# ~4,000 per server CPU-second, W6 ~1,500, a flow ~20 CPU-ms of which argon2 most): well under half a core.
DEFAULT_RATES = {"W1": 50.0, "W4": 50.0, "W6": 25.0, "flow": 1.0}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Tally:
    """What one kind of request gave over the run."""

    sent: int = 0
    ok_latencies: list[float] = field(default_factory=list)
    throttled: int = 0
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    samples: list[str] = field(default_factory=list)  # the first few error texts, for the report
    # How late the generator itself sent a request (seconds after it was due): large means the load
    # generator was starved of CPU, and the latencies measure that, not the server.
    worst_start_lag: float = 0.0

    def record(self, outcome: str, latency: float, detail: str = "") -> None:
        if outcome == "ok":
            self.ok_latencies.append(latency)
        elif outcome == "429":
            self.throttled += 1
        else:
            self.errors[outcome] += 1
            if detail and len(self.samples) < 3:
                self.samples.append(f"{outcome}: {detail[:200]}")

    def summary(self) -> dict[str, Any]:
        latencies = sorted(self.ok_latencies)
        quantiles = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) >= 2 else None
        return {
            "sent": self.sent, "ok": len(latencies), "throttled_429": self.throttled,
            "errors": dict(self.errors), "error_samples": self.samples,
            **{f"p{q}_ms": round(quantiles[q - 1] * 1000, 1) if quantiles else None for q in (50, 95, 99)},
            "worst_start_lag_ms": round(self.worst_start_lag * 1000, 1),
        }


class Failed(Exception):
    """A request answered, but not as it should (the outcome is its status or a short reason)."""

    def __init__(self, outcome: str, detail: str = "") -> None:
        super().__init__(detail)
        self.outcome = outcome


@dataclass
class State:
    """Shared between the kinds: the newest W1 token (for W4) and the idle refresh tokens (for W6)."""

    credentials: Credentials
    access_token: str = ""
    chains: collections.deque[str] = field(default_factory=collections.deque)


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code != 200:
        raise Failed(str(response.status_code), response.text)
    return response


def workloads(state: State) -> dict[str, Callable[[httpx.AsyncClient], Awaitable[None]]]:
    creds = state.credentials
    service = {"Authorization": Credentials.basic(creds.service_id, creds.service_secret), **FORM}
    introspector = {"Authorization": Credentials.basic(creds.introspector_id, creds.introspector_secret), **FORM}
    web = {"Authorization": Credentials.basic(creds.web_id, creds.web_secret), **FORM}
    cc_body = "grant_type=client_credentials&scope=" + "+".join(API_SCOPES[:2]).replace(":", "%3A")

    async def client_credentials(http: httpx.AsyncClient) -> None:
        response = _check(await http.post("/token", content=cc_body, headers=service))
        state.access_token = response.json()["access_token"]

    async def introspection(http: httpx.AsyncClient) -> None:
        response = _check(await http.post("/introspect", data={"token": state.access_token}, headers=introspector))
        if response.json().get("active") is not True:
            raise Failed("inactive", response.text)

    async def refresh(http: httpx.AsyncClient) -> None:
        if not state.chains:
            raise Failed("no_chain", "every refresh chain is in flight or lost")
        token = state.chains.popleft()
        response = _check(await http.post("/token", data={"grant_type": "refresh_token", "refresh_token": token}, headers=web))
        state.chains.append(response.json()["refresh_token"])

    async def flow(http: httpx.AsyncClient) -> None:
        try:
            body, _ = await sign_in_flow(http, creds)
        except AssertionError as error:
            raise Failed("flow_failed", str(error)) from None
        state.chains.append(body["refresh_token"])

    return {"W1": client_credentials, "W4": introspection, "W6": refresh, "flow": flow}


async def open_loop(
    kind: str,
    rate: float,
    one: Callable[[httpx.AsyncClient], Awaitable[None]],
    http: httpx.AsyncClient,
    tally: Tally,
    *,
    seconds: float,
    max_in_flight: int,
) -> None:
    """Start ``one`` every 1/rate seconds for ``seconds``; never waits for earlier answers."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    in_flight: set[asyncio.Task[None]] = set()

    async def fire(due: float) -> None:
        try:
            await one(http)
            outcome, detail = "ok", ""
        except Failed as failure:
            outcome, detail = failure.outcome, str(failure)
        except httpx.HTTPError as error:
            outcome, detail = type(error).__name__, str(error)
        tally.record(outcome, loop.time() - due, detail)

    n = 0
    while (due := start + n / rate) < start + seconds:
        await asyncio.sleep(max(0.0, due - loop.time()))
        tally.worst_start_lag = max(tally.worst_start_lag, loop.time() - due)
        tally.sent += 1
        if len(in_flight) >= max_in_flight:  # the server is this far behind: count it, do not pile on
            tally.record("overload", 0.0, f"{max_in_flight} {kind} requests in flight")
        else:
            task = asyncio.create_task(fire(due))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        n += 1
    await asyncio.gather(*in_flight)


async def run_mix(base_url: str, state: State, rates: dict[str, float], *, seconds: float, progress: float,
                  prime: bool = True) -> dict[str, Tally]:
    tallies = {kind: Tally() for kind in rates}
    one = workloads(state)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base_url, timeout=5, limits=limits, cookies=no_cookies()) as http:
        if prime or not state.access_token:
            await one["W1"](http)  # W4 needs a token from the first moment
        loops = [
            asyncio.create_task(open_loop(kind, rate, one[kind], http, tallies[kind], seconds=seconds,
                                          max_in_flight=max(8, int(rate * 5))))
            for kind, rate in rates.items()
        ]
        began = time.monotonic()
        while not all(task.done() for task in loops):
            await asyncio.wait(loops, timeout=progress)
            if not all(task.done() for task in loops):
                line = ", ".join(
                    f"{k} {len(t.ok_latencies)} ok/{sum(t.errors.values())} err" for k, t in tallies.items()
                )
                print(f"  {time.monotonic() - began:5.0f} s: {line}", file=sys.stderr, flush=True)
        for task in loops:
            task.result()
    return tallies


def verdict(summary: dict[str, dict[str, Any]], p95_limit_ms: float) -> list[str]:
    """Why the run failed; empty when it passed."""
    problems = []
    for kind, row in summary.items():
        if row["errors"]:
            problems.append(f"{kind}: {sum(row['errors'].values())} errors {row['errors']}")
        if not row["ok"]:
            problems.append(f"{kind}: no request succeeded")
        elif row["p95_ms"] is not None and row["p95_ms"] >= p95_limit_ms:
            problems.append(f"{kind}: p95 {row['p95_ms']} ms >= {p95_limit_ms:g} ms")
    return problems


def markdown(summary: dict[str, dict[str, Any]], seconds: float) -> str:
    lines = [
        "| Kind | rate /s | sent | 2xx | 429 | errors | p50 ms | p95 ms | p99 ms | worst send lag ms |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for kind, row in summary.items():
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(row["errors"].items())) or "0"
        percentiles = " | ".join("–" if row[f"p{q}_ms"] is None else str(row[f"p{q}_ms"]) for q in (50, 95, 99))
        lines.append(
            f"| {kind} {KINDS[kind]} | {row['sent'] / seconds:.1f} | {row['sent']} | {row['ok']} | {row['throttled_429']} | "
            f"{errors} | {percentiles} | {row['worst_start_lag_ms']} |"
        )
    return "\n".join(lines)


def parse_rates(text: str) -> dict[str, float]:
    rates = dict(DEFAULT_RATES)
    for item in filter(None, (part.strip() for part in text.split(","))):
        kind, _, value = item.partition("=")
        if kind not in KINDS:
            raise argparse.ArgumentTypeError(f"unknown kind {kind!r} (one of {', '.join(KINDS)})")
        rates[kind] = float(value)
    return {kind: rate for kind, rate in rates.items() if rate > 0}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of load (default 180)")
    parser.add_argument("--rates", type=parse_rates, default=dict(DEFAULT_RATES),
                        help="per-second rates, e.g. W1=50,W4=50,W6=25,flow=1 (0 leaves a kind out)")
    parser.add_argument("--chains", type=int, default=32, help="refresh chains seeded before the run (default 32)")
    parser.add_argument("--p95-ms", type=float, default=500.0, help="p95 each kind must stay under (default 500)")
    parser.add_argument("--progress", type=float, default=30.0, help="seconds between progress lines (default 30)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra AUTHSERVER_* setting for the server, e.g. AUTHSERVER_ABUSE__TOKEN_PER_CLIENT=600")
    parser.add_argument("--output", help="also write the results as JSON to this path")
    return parser.parse_args(argv)


def start_server(args: argparse.Namespace, *, staging: bool = False) -> tuple[Ours, State]:
    """Pin the generator, start the server (``--env``), seed ``--chains`` refresh chains if W6 runs. Stop it after."""
    pin_load_generator()
    server = Ours(make_workdir(), backend="postgres", staging=staging, extra_env=dict(item.split("=", 1) for item in args.env))
    print(f"starting authserver{' (staging)' if staging else ''} …", file=sys.stderr, flush=True)
    server.start()
    assert server.credentials is not None
    state = State(server.credentials)
    if "W6" in args.rates:
        try:
            state.chains.extend(asyncio.run(collect_refresh_tokens(server.base_url, server.credentials, args.chains)))
        except BaseException:
            server.stop()
            raise
    return server, state


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server, state = start_server(args)
    try:
        cpu_before, rss_before, own_before = cpu_seconds(server.pid), memory_mb(server.pid), time.process_time()
        print(f"running {args.duration:g} s: " + ", ".join(f"{k} {v:g}/s" for k, v in args.rates.items()), file=sys.stderr, flush=True)
        tallies = asyncio.run(run_mix(server.base_url, state, args.rates, seconds=args.duration, progress=args.progress))
        server_cpu, rss_after = cpu_seconds(server.pid) - cpu_before, memory_mb(server.pid)
        load_cpu = time.process_time() - own_before
    finally:
        server.stop()
    summary = {kind: tally.summary() for kind, tally in tallies.items()}
    problems = verdict(summary, args.p95_ms)
    document = {
        "duration_s": args.duration, "rates": args.rates, "p95_limit_ms": args.p95_ms, "settings": server.settings_note,
        "server": {"cpu_seconds": round(server_cpu, 2), "rss_mb_before": rss_before, "rss_mb_after": rss_after},
        "load_generator_cpu_seconds": round(load_cpu, 2),
        "summary": summary, "passed": not problems, "problems": problems,
    }
    if args.output:
        Path(args.output).write_text(json.dumps(document, indent=2))
    print(f"\n## authserver soak: {args.duration:g} s, {server.settings_note}\n")
    print(markdown(summary, args.duration))
    print(f"\n- server CPU {server_cpu:.1f} s over {args.duration:g} s ({100 * server_cpu / args.duration:.0f}% of a core); "
          f"RSS {rss_before.get('rss_mb', 0):.0f} → {rss_after.get('rss_mb', 0):.0f} MB (peak {rss_after.get('peak_rss_mb', 0):.0f}); "
          f"load generator CPU {load_cpu:.1f} s ({100 * load_cpu / args.duration:.0f}% of a core: near 100% means the figures are the client's)")
    print(f"- server log: {server.log_path}")
    for kind, row in summary.items():
        for sample in row["error_samples"]:
            print(f"- {kind} {sample}")
    print("\nPASSED" if not problems else "\nFAILED: " + "; ".join(problems))
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
