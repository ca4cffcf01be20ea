"""Housekeeping: delete expired codes, refresh tokens, grants, browser sessions and deny-list entries.

Runs as ``authserver purge`` (cron) and as a periodic task in every server process
(``lifecycle.purge_interval``). Several instances coordinate through the cache: an instance runs a round
only if it wins ``purge:lock`` for the interval, so one round runs per interval across the fleet (if the
cache is unavailable the instance purges anyway: the deletes are idempotent and skip locked rows).
"""

from __future__ import annotations

import asyncio
import logging
import random

from authserver.services import Services
from authserver.storage.sql.lifecycle import PurgeReport

log = logging.getLogger("authserver.housekeeping")

LOCK_KEY = "purge:lock"


async def purge_once(services: Services) -> PurgeReport:
    settings = services.settings.lifecycle
    report = await services.lifecycle.purge(retention=settings.purge_retention, batch_size=settings.purge_batch_size)
    log.info(
        "purged %d rows (codes %d, refresh tokens %d, grants %d, sessions %d, deny list %d)",
        report.total(), report.codes, report.refresh_tokens, report.grants, report.sessions, report.deny_list,
    )
    return report


async def _won_round(services: Services, interval: int) -> bool:
    try:
        return await services.cache.add(LOCK_KEY, "1", max(interval * 0.9, 1))
    except Exception:  # noqa: BLE001 - a cache outage must not stop housekeeping
        return True


async def purge_periodically(services: Services, *, interval: int) -> None:
    """Forever: wait about ``interval`` seconds (±10 % jitter), then purge if this instance won the round."""
    while True:
        await asyncio.sleep(interval * random.uniform(0.9, 1.1))
        try:
            if await _won_round(services, interval):
                await purge_once(services)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("purge failed; retrying in the next round")
