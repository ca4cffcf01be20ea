"""Load generators: wrk (fixed requests, and refresh chains via bench/wrk.lua) and an asyncio + httpx
client for the multi-step sign-in flow (and as a fallback where wrk is missing).

Every run returns a Measurement: completed requests (2xx only), wall time, latency percentiles.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import re
import shutil
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jws
from joserfc.jwk import ECKey

from bench.servers import REDIRECT_URI, Credentials

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk.lua"
LOAD_CPU = 1
FLOW_SCOPE = "openid profile email offline_access read:levels"


@dataclass
class Measurement:
    ok: int
    errors: int
    seconds: float
    p50_ms: float | None
    p99_ms: float | None
    steps_ms: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


@dataclass
class Request:
    """One fixed request, refresh chains when ``tokens`` is set, or one body per request when ``bodies`` is
    (W7: each client assertion works once, so every request carries a fresh one made beforehand)."""

    method: str
    path: str
    body: str = ""
    auth: str = ""
    tokens: list[str] | None = None
    bodies: list[str] | None = None


ASSERTION_TYPE = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"


def assertion_bodies(pkjwt: dict[str, Any], scope_body: str, count: int) -> list[str]:
    """``count`` client-credentials bodies, each with its own private_key_jwt assertion (ES256, aud = issuer,
    a 5-minute exp, a random jti), signed here so the server under test pays only the verification."""
    import secrets as _secrets

    from joserfc import jwt
    from joserfc.jwk import ECKey

    key = ECKey.import_key(pkjwt["key"])
    client_id, issuer = pkjwt["client_id"], pkjwt["issuer"]
    header = {"alg": "ES256", "kid": key.kid}
    now = int(time.time())
    bodies = []
    for _ in range(count):
        claims = {"iss": client_id, "sub": client_id, "aud": issuer, "iat": now, "exp": now + 300, "jti": _secrets.token_urlsafe(16)}
        assertion = jwt.encode(header, claims, key, algorithms=["ES256"])
        bodies.append(f"{scope_body}&client_assertion_type={ASSERTION_TYPE}&client_assertion={assertion}")
    return bodies


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def pin_load_generator() -> None:
    """Keep this process (the Python load generator) off the server core."""
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(0, {LOAD_CPU})


def run_wrk(base_url: str, request: Request, *, seconds: float, connections: int, workdir: Path) -> Measurement:
    env = dict(os.environ, BENCH_PATH=request.path, BENCH_AUTH=request.auth, BENCH_BODY=request.body)
    if request.tokens is not None:
        tokens_file = workdir / "refresh-tokens.txt"
        tokens_file.write_text("\n".join(request.tokens) + "\n")
        env.update(BENCH_MODE="refresh", BENCH_TOKENS=str(tokens_file))
    elif request.bodies is not None:
        bodies_file = workdir / "bodies.txt"
        bodies_file.write_text("\n".join(request.bodies) + "\n")
        env.update(BENCH_MODE="once", BENCH_BODIES=str(bodies_file))
    else:
        env["BENCH_MODE"] = "post" if request.method == "POST" else "get"
    duration = max(1, round(seconds))
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "-s", str(WRK_SCRIPT), base_url]
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        command = ["taskset", "-c", str(LOAD_CPU), *command]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    if os.environ.get("BENCH_DEBUG"):
        print(completed.stderr[:3000])
    output = completed.stdout
    line = next(line for line in output.splitlines() if line.startswith("{"))
    result = json.loads(line)
    errors = result["status_errors"] + result["connect"] + result["read"] + result["write"] + result["timeout"]
    return Measurement(
        ok=result["requests"] - result["status_errors"],
        errors=errors,
        seconds=result["duration_us"] / 1e6,
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
    )


async def run_python(
    base_url: str,
    one: Callable[[httpx.AsyncClient, int], Awaitable[dict[str, float] | None]],
    *,
    seconds: float,
    concurrency: int,
) -> Measurement:
    """``concurrency`` loops calling ``one`` until the deadline; ``one`` returns step timings or None on failure."""
    latencies: list[float] = []
    steps: dict[str, list[float]] = {}
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10, cookies=no_cookies()) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def worker(index: int) -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                try:
                    timings = await one(client, index)
                except (httpx.HTTPError, AssertionError, KeyError, ValueError):
                    timings = None
                if timings is None:
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - began)
                for name, value in timings.items():
                    steps.setdefault(name, []).append(value)

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - start
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive") if len(latencies) >= 2 else None
    return Measurement(
        ok=len(latencies),
        errors=errors,
        seconds=elapsed,
        p50_ms=quantiles[49] * 1000 if quantiles else None,
        p99_ms=quantiles[98] * 1000 if quantiles else None,
        steps_ms={name: statistics.fmean(values) * 1000 for name, values in steps.items()},
    )


def fixed_request(request: Request) -> Callable[[httpx.AsyncClient, int], Awaitable[dict[str, float] | None]]:
    """The Python equivalent of a wrk run, for machines without wrk."""
    pools: dict[int, list[str]] = {}
    if request.tokens is not None:
        for i, token in enumerate(request.tokens):
            pools.setdefault(i, []).append(token)

    bodies = list(reversed(request.bodies)) if request.bodies is not None else None

    async def one(client: httpx.AsyncClient, index: int) -> dict[str, float] | None:
        headers = {"Authorization": request.auth} if request.auth else {}
        if bodies is not None:
            if not bodies:
                return None
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            response = await client.post(request.path, content=bodies.pop(), headers=headers)
            return {} if response.status_code < 300 else None
        if request.tokens is not None:
            pool = pools.get(index)
            if not pool:
                return None
            body = f"grant_type=refresh_token&refresh_token={pool.pop()}"
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            response = await client.post(request.path, content=body, headers=headers)
            if response.status_code != 200:
                return None
            pool.append(response.json()["refresh_token"])
            return {}
        if request.method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            response = await client.post(request.path, content=request.body, headers=headers)
        else:
            response = await client.get(request.path, headers=headers)
        return {} if response.status_code < 300 else None

    return one


# --- the sign-in flow (W5) ----------------------------------------------------------------------------

_HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)"')
_ACTION = re.compile(r'<form method="post" action="([^"]+)"')


def no_cookies() -> http.cookiejar.CookieJar:
    """httpx's own jar would share a session between concurrent flows (the peer's cookie is not
    Secure, so it would be sent and skip sign-in): cookies live only in each flow's Jar."""
    return http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))


class Jar:
    """A minimal cookie jar: every cookie is sent back on every request of one flow (paths ignored),
    so ``Secure`` cookies work over the bench's plain-http loopback connection."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def update(self, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            pair, _, attributes = header.partition(";")
            name, _, value = pair.strip().partition("=")
            expired = "max-age=0" in attributes.lower().replace(" ", "") or "expires=thu, 01 jan 1970" in attributes.lower()
            if expired or not value:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value

    def header(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}


async def sign_in_flow(
    client: httpx.AsyncClient, credentials: Credentials, *, dpop_key: ECKey | None = None
) -> tuple[dict[str, Any], dict[str, float]]:
    """Browser + client side of the code flow with PKCE: /authorize → sign-in form → redirects → /token.

    Works for both servers: it follows redirects and submits the one form it meets with the hidden
    fields it carries plus username and password. Returns the token response and seconds per step.
    With ``dpop_key`` it is the public SPA client redeeming the code with a DPoP proof (W8).
    """
    jar = Jar()
    steps: dict[str, float] = {}
    verifier = generate_token(64)
    client_id = credentials.spa_id if dpop_key is not None else credentials.web_id
    params = {
        "response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT_URI,
        "scope": FLOW_SCOPE, "state": generate_token(16), "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }

    async def timed(step: str, coroutine: Awaitable[httpx.Response]) -> httpx.Response:
        began = time.perf_counter()
        response = await coroutine
        steps[step] = steps.get(step, 0.0) + (time.perf_counter() - began)
        jar.update(response)
        return response

    base = str(client.base_url)
    response = await timed("authorize", client.get("/authorize", params=params, headers=jar.header()))
    signed_in = False
    for _ in range(8):
        if response.status_code in (302, 303):
            location = response.headers["location"]
            if location.startswith(REDIRECT_URI):
                query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
                code = query["code"]
                break
            target = urlsplit(urljoin(base, location))
            path = target.path + (f"?{target.query}" if target.query else "")
            response = await timed("resume" if signed_in else "sign-in page", client.get(path, headers=jar.header()))
        elif response.status_code == 200 and not signed_in:
            html = response.text
            action_match = _ACTION.search(html)
            assert action_match, "no sign-in form"
            form = dict(_HIDDEN.findall(html))
            form.update(username=credentials.username, password=credentials.password)
            headers = {**jar.header(), "Content-Type": "application/x-www-form-urlencoded"}
            response = await timed("sign-in POST", client.post(action_match.group(1), data=form, headers=headers))
            signed_in = True
        else:
            raise AssertionError(f"unexpected {response.status_code} in the flow: {response.text[:600]}")
    else:
        raise AssertionError("too many redirects")
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier}
    if dpop_key is not None:
        data["client_id"] = client_id
        headers = {"DPoP": dpop_proof(dpop_key, "POST", f"{(credentials.issuer or base).rstrip('/')}/token")}
    else:
        headers = {"Authorization": Credentials.basic(credentials.web_id, credentials.web_secret)}
    token = await timed("token", client.post("/token", data=data, headers=headers))
    assert token.status_code == 200, token.text
    return token.json(), steps


def flow_workload(credentials: Credentials) -> Callable[[httpx.AsyncClient, int], Awaitable[dict[str, float] | None]]:
    async def one(client: httpx.AsyncClient, index: int) -> dict[str, float] | None:
        _, steps = await sign_in_flow(client, credentials)
        return steps

    return one


async def collect_refresh_tokens(base_url: str, credentials: Credentials, count: int, *, concurrency: int = 8) -> list[str]:
    """Run ``count`` sign-in flows and keep their refresh tokens: the seeds of the refresh chains."""
    tokens: list[str] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30, cookies=no_cookies()) as client:
        semaphore = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with semaphore:
                body, _ = await sign_in_flow(client, credentials)
                tokens.append(body["refresh_token"])

        await asyncio.gather(*(one() for _ in range(count)))
    return tokens


# --- DPoP-bound refresh (W8) ---------------------------------------------------------------------------


def dpop_proof(key: ECKey, method: str, url: str) -> str:
    """A fresh RFC 9449 proof (unique jti, current iat), made by the load generator per request."""
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.as_dict(private=False)}
    claims = {"jti": generate_token(22), "htm": method, "htu": url, "iat": int(time.time())}
    return jws.serialize_compact(header, json.dumps(claims), key, algorithms=["ES256"])


async def collect_dpop_chains(base_url: str, credentials: Credentials, count: int, *, concurrency: int = 8) -> list[tuple[str, ECKey]]:
    """``count`` sign-in flows of the public SPA client, each with its own DPoP key: refresh chains bound to it."""
    chains: list[tuple[str, ECKey]] = []
    async with httpx.AsyncClient(base_url=base_url, timeout=30, cookies=no_cookies()) as client:
        semaphore = asyncio.Semaphore(concurrency)

        async def one() -> None:
            key = ECKey.generate_key("P-256")
            async with semaphore:
                body, _ = await sign_in_flow(client, credentials, dpop_key=key)
                assert body.get("token_type") == "DPoP", body
                chains.append((body["refresh_token"], key))

        await asyncio.gather(*(one() for _ in range(count)))
    return chains


def dpop_refresh_workload(
    chains: list[tuple[str, ECKey]], credentials: Credentials, base_url: str, *, concurrency: int
) -> Callable[[httpx.AsyncClient, int], Awaitable[dict[str, float] | None]]:
    """Each of ``concurrency`` workers rotates its own chains with a fresh proof of the chain's key on every request."""
    pools: dict[int, list[tuple[str, ECKey]]] = {}
    for i, chain in enumerate(chains):
        pools.setdefault(i % concurrency, []).append(chain)
    token_url = f"{(credentials.issuer or base_url).rstrip('/')}/token"

    async def one(client: httpx.AsyncClient, index: int) -> dict[str, float] | None:
        pool = pools.get(index)
        if not pool:
            return None
        token, key = pool.pop()
        response = await client.post(
            "/token", data={"grant_type": "refresh_token", "refresh_token": token, "client_id": credentials.spa_id},
            headers={"DPoP": dpop_proof(key, "POST", token_url)},
        )
        if response.status_code != 200 or response.json().get("token_type") != "DPoP":
            return None
        pool.append((response.json()["refresh_token"], key))
        return {}

    return one
