"""Graceful shutdown behind a load balancer: SIGTERM → /readyz 503 → (drain delay) → uvicorn stops.

uvicorn installs its SIGTERM handler (``signal.signal``) before running the lifespan; at start-up we wrap
it. On the first SIGTERM the application is marked draining, so /readyz answers 503 and the load
balancer takes the instance out of rotation; after ``observability.shutdown_drain_seconds`` uvicorn's own
handler runs: it stops accepting connections and lets in-flight requests finish for up to
``observability.graceful_timeout`` seconds. A second SIGTERM stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("authserver.shutdown")


def _noop() -> None:
    return None


def install_drain_on_sigterm(state: Any, delay: float) -> Callable[[], None]:
    """Wrap the current SIGTERM handler (uvicorn's); returns a function restoring it."""
    if threading.current_thread() is not threading.main_thread():
        return _noop
    previous = signal.getsignal(signal.SIGTERM)
    if not callable(previous):  # SIG_DFL / SIG_IGN: not running under a server that handles SIGTERM
        return _noop
    loop = asyncio.get_running_loop()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        if getattr(state, "draining", False) or delay <= 0:
            state.draining = True
            previous(signum, frame)
            return
        state.draining = True
        log.info("SIGTERM: readiness now 503; stopping in %.1f s", delay)
        loop.call_soon_threadsafe(loop.call_later, delay, previous, signum, None)

    signal.signal(signal.SIGTERM, on_sigterm)

    def restore() -> None:
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, previous)

    return restore
