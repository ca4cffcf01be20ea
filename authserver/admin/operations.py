"""Operational switches of the admin API: emergency mode (and, in staging, chaos experiments).

Same rules as ``admin/service.py``: strict bodies (``validation.Body``), every refusal a 4xx JSON error,
every change a security event with the actor.
"""

from __future__ import annotations

from typing import Any

from authserver.admin.service import Actor
from authserver.admin.validation import Body
from authserver.services import Services

MIN_EMERGENCY = 60
MAX_EMERGENCY = 7 * 24 * 3600


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
