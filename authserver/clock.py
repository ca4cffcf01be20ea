"""Time, injected: code asks a Clock instead of calling time.time() or time.monotonic(), so expiry tests
need no sleeps and no poking at private attributes.

``now()`` is wall-clock time (token ``exp``, rows' timestamps); ``monotonic()`` is seconds on a clock
that never goes back (in-process caches, reload intervals, breakers).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    def monotonic(self) -> float: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def monotonic(self) -> float:
        return time.monotonic()


class FrozenClock:
    """A clock for tests: stands still until told to move."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime.now(timezone.utc)
        self._elapsed = 0.0

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        """Seconds since the clock was made, moved only by :meth:`advance` (never backwards)."""
        return self._elapsed

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
        self._elapsed += max(seconds, 0.0)
