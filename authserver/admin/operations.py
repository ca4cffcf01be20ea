"""Operational switches of the admin API: emergency mode (and, in staging, chaos experiments).

Same rules as ``admin/service.py``: strict bodies (``admin/models.py``), every refusal a 4xx JSON error,
every change a security event with the actor.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from authserver.admin.models import ChaosStart, EmergencySwitch, read
from authserver.admin.service import Actor
from authserver.admin.validation import AdminError, invalid
from authserver.chaos import EXPERIMENTS, Chaos, Experiment, new_experiment
from authserver.services import Services

DEFAULT_CHAOS_DURATION = 300


async def emergency_status(services: Services) -> dict[str, Any]:
    state = dict(await services.limiter.emergency.status())
    state.pop("expired", None)
    return state


async def set_emergency(services: Services, data: Any, *, actor: Actor) -> dict[str, Any]:
    """``{"on": true, "reason": "…", "duration_seconds": 3600}`` or ``{"on": false, "reason": "…"}``."""
    _, given = read(EmergencySwitch, data)
    on, reason, duration = given["on"], given.get("reason"), given.get("duration_seconds")
    problems: list[dict[str, str]] = []
    if on and reason is None:
        problems.append({"field": "reason", "message": "required"})
    if duration is not None and not on:
        problems.append({"field": "duration_seconds", "message": "only when switching on"})
    if problems:
        raise invalid("The request has invalid fields.", problems)
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
    parsed, given = read(ChaosStart, data)
    name = parsed.experiment
    edge = name == "edge_5xx"
    problems: list[dict[str, str]] = []
    target = given.get("target")
    if edge and target is not None:
        problems.append({"field": "target", "message": "edge_5xx has no target"})
    elif not edge and target is None:
        problems.append({"field": "target", "message": "required"})
    min_ms, max_ms = given.get("min_ms") or 0, given.get("max_ms") or 0
    duration = given.get("duration_seconds") or DEFAULT_CHAOS_DURATION
    rate = given.get("rate")
    wants_latency, wants_rate = name == "latency", name in ("error_rate", "edge_5xx")
    for field_name, wanted in (("min_ms", wants_latency), ("max_ms", wants_latency), ("rate", wants_rate)):
        if field_name in given and not wanted:
            problems.append({"field": field_name, "message": f"not used by {name}"})
    if wants_latency and ("max_ms" not in given or max_ms < min_ms):
        problems.append({"field": "max_ms", "message": "required, at least min_ms"})
    if wants_rate and rate is None:
        problems.append({"field": "rate", "message": "required, a number above 0 and at most 1"})
    if problems:
        raise invalid("The request has invalid fields.", problems)
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
