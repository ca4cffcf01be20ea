"""Prometheus metrics (exposition format 0.0.4, served at /metrics).

One :class:`Metrics` per application, with its own registry, so several apps in one process (tests)
never share counters. Labels are bounded: routes by their template (``/admin/api/clients/{client_id}``,
never the concrete path; ``unmatched`` for 404s), clients by id (operator-registered, bounded).

Several uvicorn workers on one host: set ``PROMETHEUS_MULTIPROC_DIR`` to an empty, writable folder
before start; each worker then writes its values there and /metrics aggregates all of them
(prometheus_client multiprocess mode). ``authserver serve`` with ``server.workers`` > 1 and no folder set
makes a private temporary one (``ensure_multiprocess_dir``), so a scrape never shows one worker's share
as if it were the whole. With one worker per container nothing is needed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)

# Security events that are sign-in or MFA outcomes also get their own, well-known series.
SIGN_IN_EVENTS = frozenset({"login", "sign_in", "login_password"})
MFA_EVENTS = frozenset({"mfa", "mfa_verify", "totp", "backup_code", "mfa_totp", "mfa_backup_code"})


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir") or None


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        r = self.registry
        self.requests = Counter(
            "authserver_http_requests", "HTTP requests by route template, method and status.",
            ["route", "method", "status"], registry=r,
        )
        self.latency = Histogram(
            "authserver_http_request_duration_seconds", "Time to answer an HTTP request, by route template and method.",
            ["route", "method"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.in_flight = Gauge(
            "authserver_http_requests_in_flight", "Requests being answered now.", registry=r, multiprocess_mode="livesum",
        )
        self.tokens_issued = Counter(
            "authserver_tokens_issued", "Token responses issued, by grant type and client.", ["grant_type", "client_id"], registry=r,
        )
        self.security_events = Counter(
            "authserver_security_events", "Security events recorded, by event and outcome.", ["event", "outcome"], registry=r,
        )
        self.sign_ins = Counter(
            "authserver_sign_ins", "Password sign-in attempts by outcome.", ["outcome"], registry=r,
        )
        self.mfa = Counter(
            "authserver_mfa_verifications", "Second-factor checks by method event and outcome.", ["event", "outcome"], registry=r,
        )
        self.rate_limited = Counter(
            "authserver_rate_limited", "Requests refused with 429 Too Many Requests, by route template.", ["route"], registry=r,
        )
        self.key_age = Gauge(
            "authserver_signing_key_age_seconds", "Age of each published signing key since activation (or creation).",
            ["kid", "alg", "state"], registry=r, multiprocess_mode="max",
        )
        self.db_pool_in_use = Gauge(
            "authserver_db_pool_connections_in_use", "Database connections checked out of the pool.",
            registry=r, multiprocess_mode="livesum",
        )
        self.db_pool_size = Gauge(
            "authserver_db_pool_size", "Database connections held by the pool (idle + in use).",
            registry=r, multiprocess_mode="livesum",
        )

        self.db_pool_capacity = Gauge(
            "authserver_db_pool_capacity", "Most connections the pool may open (pool_size + max_overflow).",
            registry=r, multiprocess_mode="livesum",
        )
        self.emergency_mode = Gauge(
            "authserver_emergency_mode", "1 while emergency mode is on (as this process last read the shared switch).",
            registry=r, multiprocess_mode="livemax",
        )

    # -- observations -------------------------------------------------------------------------------

    # Labelled children by label values: ``labels()`` takes a lock and builds a key on every call, and the
    # same few series are hit on every request. Bounded like the labels themselves (route templates,
    # registered clients, event names).
    def _child(self, metric: Any, *values: str) -> Any:
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self._child(self.requests, route, method, str(status)).inc()
        self._child(self.latency, route, method).observe(seconds)
        if status == 429:
            self.rate_limited.labels(route).inc()

    def token_issued(self, grant_type: str, client_id: str) -> None:
        self._child(self.tokens_issued, grant_type, client_id).inc()

    def security_event(self, event: str, outcome: str) -> None:
        self._child(self.security_events, event, outcome).inc()
        if event in SIGN_IN_EVENTS:
            self.sign_ins.labels(outcome).inc()
        elif event in MFA_EVENTS or event.startswith("mfa"):
            self.mfa.labels(event, outcome).inc()

    def set_key_ages(self, keys: Iterable[tuple[str, str, str, datetime]], now: datetime) -> None:
        """(kid, alg, state, since) of every published key; keys no longer published disappear."""
        self.key_age.clear()
        for kid, alg, state, since in keys:
            self.key_age.labels(kid, alg, state).set(max((now - since).total_seconds(), 0.0))

    def set_emergency(self, on: bool) -> None:
        self.emergency_mode.set(1 if on else 0)

    def set_pool_capacity(self, capacity: int) -> None:
        self.db_pool_capacity.set(capacity)

    def set_pool(self, in_use: int | None, size: int | None) -> None:
        if in_use is not None:
            self.db_pool_in_use.set(in_use)
        if size is not None:
            self.db_pool_size.set(size)

    # -- exposition -----------------------------------------------------------------------------------

    def exposition(self) -> tuple[bytes, str]:
        directory = multiprocess_dir()
        if directory:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def ensure_multiprocess_dir(workers: int) -> str | None:
    """Before workers start: with several workers and no folder configured, make a private temporary one
    and name it in the environment the workers inherit (uvicorn spawns them after this). Returns the folder
    in use (None: one worker, single-process metrics)."""
    directory = multiprocess_dir()
    if directory or workers <= 1:
        return directory
    directory = tempfile.mkdtemp(prefix="authserver-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory


def prepare_multiprocess_dir() -> None:
    """Before workers start: create the multiprocess folder and remove files a previous run left behind."""
    directory = multiprocess_dir()
    if not directory:
        return
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        if name.endswith(".db"):
            os.remove(os.path.join(directory, name))


def mark_worker_dead() -> None:
    """When a worker stops: drop its live gauges from the aggregate (multiprocess mode only)."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
