"""Optional OpenTelemetry tracing (``pip install 'authserver[otel]'``, ``observability.tracing = true``).

A server span per request (opentelemetry-instrumentation-asgi), continuing the caller's W3C ``traceparent``.
Spans go to an OTLP/HTTP collector configured by the standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_SERVICE_NAME``, …). Log lines then carry the span's trace id (see ``authserver.logging``).
"""

from __future__ import annotations

from typing import Any

from authserver.settings import SettingsError


def tracing_middleware() -> Any:
    """The ASGI middleware class, after making sure a tracer provider exports somewhere."""
    try:
        from opentelemetry import trace
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    except ImportError:
        raise SettingsError("setting observability.tracing: install the otel extra (pip install 'authserver[otel]')") from None
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": "authserver"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    return OpenTelemetryMiddleware


def current_span_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the active OpenTelemetry span, if tracing is installed and a span is active."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
