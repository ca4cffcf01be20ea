"""Run as a separate process by test_two_instances: the rotation schedule at given simulated instants.

    python -m tests.keys.rotation_worker <start epoch> <seconds between passes> <passes>

Settings come from the environment (AUTHSERVER_*), as for a server instance.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime

from authserver.app import build_services
from authserver.clock import FrozenClock
from authserver.settings import load_settings


async def run(start: float, step: float, passes: int) -> None:
    clock = FrozenClock(datetime.fromtimestamp(start, UTC))
    services = build_services(load_settings(), clock=clock)
    try:
        await services.keys.ensure_active_keys()
        for _ in range(passes):
            for _ in range(3):  # several passes at the same instant: the job must be idempotent
                await services.key_manager.run_scheduled()
            clock.advance(step)
    finally:
        await services.close()


if __name__ == "__main__":
    asyncio.run(run(float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])))
