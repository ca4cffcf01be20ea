"""The ceiling: a bare Starlette JSON endpoint under the same uvicorn settings as authserver.

Whatever authserver does per request costs on top of this, so its figures read as a fraction of what
Python + uvicorn + Starlette can do on one core.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


app = Starlette(routes=[Route("/json", hello, methods=["GET"])])
