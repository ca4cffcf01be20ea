"""Operational switches of the admin API: emergency mode (and, in staging, chaos experiments).

Same rules as ``admin/service.py``: strict bodies (``validation.Body``), every refusal a 4xx JSON error,
every change a security event with the actor.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from authserver.admin.service import Actor
from authserver.admin.validation import AdminError, Body, invalid
from authserver.chaos import EXPERIMENTS, MAX_DURATION, TARGETS, Chaos, Experiment, new_experiment
from authserver.services import Services

MIN_EMERGENCY = 60
MAX_EMERGENCY = 7 * 24 * 3600
MAX_LATENCY_MS = 10_000
DEFAULT_CHAOS_DURATION = 300


async def emergency_status(services: Services) -> dict[str, Any]:
    state = dict(await services.limiter.emergency.status())
    state.pop("expired", None)
    return state


async def set_emergency(services: Services, data: Any, *, actor: Actor) -> dict[str, Any]:
    """``{"on": true, "reason": "…", "duration_seconds": 3600}`` or ``{"on": false, "reason": "…"}``."""
    body = Body(data, allowed={"on", "reason", "duration_seconds"})
    on = body.boolean("on")
    if not body.has("on"):
        body.error("on", "required")
    reason = body.string("reason", required=bool(on), max_length=300)
    duration = body.integer("duration_seconds", minimum=MIN_EMERGENCY, maximum=MAX_EMERGENCY)
    if duration is not None and on is False:
        body.error("duration_seconds", "only when switching on")
    body.done()
    await services.limiter.emergency.set(bool(on), by=actor.label(), reason=reason, duration=duration)
    return await emergency_status(services)


# -- chaos experiments (staging only) ---------------------------------------------------------------------


def _chaos(services: Services) -> Chaos:
    if services.chaos is None:
        raise AdminError(403, "forbidden", "Chaos experiments are refused in production.")
    return services.chaos


def chaos_view(experiments: list[Experiment]) -> dict[str, Any]:
    return {"experiments": [e.as_dict() for e in experiments], "available": list(EXPERIMENTS)}


async def chaos_status(services: Services) -> dict[str, Any]:
    chaos = _chaos(services)
    await chaos.refresh()
    return chaos_view(chaos.running())


def read_experiment(data: Any, *, now: datetime, by: str) -> Experiment:
    """``{"experiment": "latency", "target": "database", "min_ms": 50, "max_ms": 200, "duration_seconds": 300}``;
    ``error_rate`` and ``edge_5xx`` take ``rate`` (0-1), ``dependency_down`` only a target."""
    body = Body(data, allowed={"experiment", "target", "min_ms", "max_ms", "rate", "duration_seconds"})
    name = body.string("experiment", required=True, max_length=40, choices=EXPERIMENTS)
    edge = name == "edge_5xx"
    target = body.string("target", required=name is not None and not edge, max_length=20, choices=TARGETS)
    if edge and target is not None:
        body.error("target", "edge_5xx has no target")
    min_ms = body.integer("min_ms", minimum=0, maximum=MAX_LATENCY_MS) or 0
    max_ms = body.integer("max_ms", minimum=1, maximum=MAX_LATENCY_MS) or 0
    duration = body.integer("duration_seconds", minimum=1, maximum=MAX_DURATION) or DEFAULT_CHAOS_DURATION
    rate = body.data.get("rate")
    wants_latency, wants_rate = name == "latency", name in ("error_rate", "edge_5xx")
    for field_name, given, wanted in (("min_ms", body.has("min_ms"), wants_latency), ("max_ms", body.has("max_ms"), wants_latency),
                                      ("rate", body.has("rate"), wants_rate)):
        if given and not wanted and name is not None:
            body.error(field_name, f"not used by {name}")
    if wants_latency and (not body.has("max_ms") or max_ms < min_ms):
        body.error("max_ms", "required, at least min_ms")
    if wants_rate and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1):
        body.error("rate", "required, a number above 0 and at most 1")
    body.done()
    return new_experiment(str(name), target or "edge", duration=duration, now=now, min_ms=min_ms, max_ms=max_ms,
                          rate=float(rate or 0.0), by=by)


async def start_chaos(services: Services, data: Any, *, actor: Actor) -> dict[str, Any]:
    chaos = _chaos(services)
    experiment = read_experiment(data, now=services.clock.now(), by=actor.label())
    running = await chaos.start(experiment)
    await services.events.record("chaos", "on", actor=actor.describe(), **experiment.as_dict())
    return chaos_view(running)


async def stop_chaos(services: Services, params: Mapping[str, str], *, actor: Actor) -> dict[str, Any]:
    chaos = _chaos(services)
    unknown = sorted(set(params) - {"experiment"})
    name = params.get("experiment")
    if unknown or (name is not None and name not in EXPERIMENTS):
        raise invalid("Unknown parameter or experiment.", [{"field": unknown[0] if unknown else "experiment", "message": "not allowed"}])
    running = await chaos.stop(name)
    await services.events.record("chaos", "off", actor=actor.describe(), experiment=name or "all")
    return chaos_view(running)
