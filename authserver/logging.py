"""Structured logging: one JSON object per line, with the request id and W3C traceparent of the request.

``configure_logging`` is called by ``authserver serve`` (never at import). Security events, already JSON
(see ``authserver.events``), are embedded as an object under ``security_event`` instead of a string.
Newlines and control characters cannot break a line: ``json.dumps`` escapes them (log injection,
ASVS 16.4.1).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from authserver.middleware.request_id import request_id_var, trace_id, traceparent_var
from authserver.tracing import current_span_ids

try:  # the otel extra is optional
    import opentelemetry.trace  # noqa: F401

    _TRACING = True
except ImportError:  # pragma: no cover - depends on the installed extras
    _TRACING = False

# Loggers whose records are configured here; uvicorn's access log is replaced by our metrics and its
# error log keeps going through the same formatter.
_LOGGERS = ("authserver", "uvicorn", "uvicorn.error")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        embedded = getattr(record, "security_event", None)
        message = "security event" if isinstance(embedded, dict) else record.getMessage()
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
        }
        if isinstance(embedded, dict):
            entry["security_event"] = embedded
            entry["message"] = message
        elif record.name == "authserver.security" and message.startswith("{"):
            try:
                entry["security_event"] = json.loads(message)
                entry["message"] = "security event"
            except ValueError:
                entry["message"] = message
        else:
            entry["message"] = message
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        traceparent = traceparent_var.get()
        if traceparent:
            entry["traceparent"] = traceparent
            entry["trace_id"] = trace_id(traceparent)
        span = current_span_ids() if _TRACING else None
        if span is not None:  # OpenTelemetry is on: its ids, so logs and traces join
            entry["trace_id"], entry["span_id"] = span
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.request_id = request_id_var.get() or "-"
        return super().format(record)


def configure_logging(fmt: str = "json", level: str = "INFO", *, stream: Any = None) -> logging.Handler:
    """Send authserver and uvicorn logs to ``stream`` (stderr) in ``fmt``; returns the handler installed."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    # Per-request access lines would duplicate the metrics; errors still go through uvicorn.error.
    logging.getLogger("uvicorn.access").disabled = True
    return handler


def uvicorn_log_config() -> dict[str, Any]:
    """A log config for uvicorn that leaves our handlers in place (uvicorn's default would replace them)."""
    return {"version": 1, "disable_existing_loggers": False}
