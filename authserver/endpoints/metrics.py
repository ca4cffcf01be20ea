"""GET /metrics: Prometheus exposition, optionally behind a bearer token (observability.metrics_token).

Gauges that describe state (signing-key ages, database pool) are refreshed at scrape time.
"""

from __future__ import annotations

import hmac
import logging

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response

from authserver.keys.keystore import PUBLISHED_STATES
from authserver.services import Services
from authserver.storage.sql.models import SigningKey

log = logging.getLogger("authserver.metrics")


async def refresh_gauges(services: Services) -> None:
    try:
        async with services.sessions() as session:
            rows = (
                await session.execute(
                    select(SigningKey.kid, SigningKey.alg, SigningKey.state, SigningKey.activated_at, SigningKey.created_at)
                    .where(SigningKey.state.in_(PUBLISHED_STATES))
                )
            ).all()
        services.metrics.set_key_ages(
            ((r.kid, r.alg, r.state, r.activated_at or r.created_at) for r in rows), services.clock.now()
        )
    except Exception:  # noqa: BLE001 - a scrape must work while the database is down (that is when it matters)
        log.warning("signing-key ages not refreshed: database unavailable")
    await services.limiter.emergency.is_on()  # sets authserver_emergency_mode (cached 5 s, never raises)
    pool = services.engine.pool
    checked_out = getattr(pool, "checkedout", None)
    checked_in = getattr(pool, "checkedin", None)
    in_use = checked_out() if callable(checked_out) else None
    idle = checked_in() if callable(checked_in) else None
    services.metrics.set_pool(in_use, None if in_use is None or idle is None else in_use + idle)
    database = services.settings.database
    if not database.url.startswith("sqlite"):
        services.metrics.set_pool_capacity(database.pool_size + database.max_overflow)


async def metrics(request: Request) -> Response:
    services: Services = request.app.state.services
    expected = services.settings.observability.metrics_token
    if expected:
        presented = request.headers.get("authorization", "")
        if not hmac.compare_digest(presented.encode(), f"Bearer {expected}".encode()):
            return Response(
                "Unauthorized", status_code=401, media_type="text/plain",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    await refresh_gauges(services)
    body, content_type = services.metrics.exposition()
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})
