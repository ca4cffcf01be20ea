"""Request ids and W3C trace context, kept in contextvars for every log line of the request
(set by middleware/edge.py).

- ``X-Request-ID``: accepted from the caller if sane, else generated; echoed in the response.
- ``traceparent`` (W3C Trace Context §3.2): accepted if well formed, else a new one is started (version 00,
  random trace id and parent id, not sampled); kept for log lines and for any call this request makes.
"""

from __future__ import annotations

import re
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
traceparent_var: ContextVar[str | None] = ContextVar("traceparent", default=None)
# An incoming X-Request-ID is kept only if it looks like this (no log injection through it).
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def parse_traceparent(value: str | None) -> str | None:
    """The header if valid (§3.2.2: not version ff, trace id and parent id not all zeros), else None."""
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if not match:
        return None
    version, trace_id, parent_id, _ = match.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return value.strip()


def trace_id(traceparent: str | None) -> str | None:
    return traceparent.split("-")[1] if traceparent else None
