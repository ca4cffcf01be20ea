"""Housekeeping: delete expired codes, refresh tokens, grants, browser sessions, deny-list entries and
sign-in throttles, delete security events older than ``lifecycle.event_retention`` and drop the IP address
and user agent from events older than ``lifecycle.event_personal_data_retention``.

Runs as ``authserver purge`` (cron) and as the ``purge`` job of :mod:`authserver.jobs` every
``lifecycle.purge_interval`` seconds, on one instance of the fleet at a time (a lease row in
``job_leases``). Every delete is batched (``lifecycle.purge_batch_size`` rows per transaction,
``lifecycle.purge_pause`` seconds between batches) and idempotent.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from authserver.services import Services
from authserver.storage.sql.lifecycle import PurgeReport

log = logging.getLogger("authserver.housekeeping")


def throttle_idle_seconds(services: Services) -> int:
    """How long an untouched, unlocked throttle row still matters: its failure window and its lock escalation."""
    abuse = services.settings.abuse
    return max(abuse.lock_reset_seconds, abuse.account_failure_window, abuse.ip_failure_window, abuse.client_failure_window)


async def purge_once(services: Services) -> PurgeReport:
    settings = services.settings.lifecycle
    report = await services.lifecycle.purge(
        retention=settings.purge_retention, batch_size=settings.purge_batch_size, pause=settings.purge_pause,
        event_retention=settings.event_retention, event_personal_data_retention=settings.event_personal_data_retention,
    )
    report.throttles = await services.lockout.purge(
        older_than=timedelta(seconds=throttle_idle_seconds(services)), batch_size=settings.purge_batch_size,
        pause=settings.purge_pause,
    )
    log.info(
        "purged %d rows (codes %d, refresh tokens %d, grants %d, sessions %d, deny list %d, throttles %d, events %d);"
        " personal data dropped from %d events",
        report.total(), report.codes, report.refresh_tokens, report.grants, report.sessions, report.deny_list,
        report.throttles, report.events, report.events_scrubbed,
    )
    return report
