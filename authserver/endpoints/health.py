"""Liveness (the process answers) and readiness (database and cache reachable, keys loaded)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def readyz(request: Request) -> Response:
    services = request.app.state.services
    checks: dict[str, bool] = {}
    try:
        async with asyncio.timeout(2):
            async with services.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        checks["database"] = True
    except Exception:
        checks["database"] = False
    try:
        async with asyncio.timeout(1):
            checks["cache"] = await services.cache.ping()
    except Exception:
        checks["cache"] = False
    checks["keys"] = bool(services.keys.published)
    # Once SIGTERM arrives the instance leaves the load balancer before it stops (authserver.shutdown).
    checks["accepting"] = not getattr(request.app.state, "draining", False)
    ready = all(checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status_code=200 if ready else 503,
        headers={"Cache-Control": "no-store"},
    )
