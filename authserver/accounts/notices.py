"""Security notices by mail: the person hears when their password, second factor or e-mail address
changes, so a change they did not make does not go unnoticed (ASVS 5 6.3.7, 7.2.4).

A notice goes to the account's address when it is verified (an unverified address may be someone
else's), in the account's language (else the page's), when mail is configured. Sending never breaks the
change it reports: the mail is queued (``Mailer.send_later``) and a failure to build or deliver it is
logged and dropped.
"""

from __future__ import annotations

import logging

from authserver.services import Services
from authserver.storage.sql.models import Account

log = logging.getLogger("authserver.notices")

# What changed: the catalogue key ``notice.<what>`` says it in words.
CHANGES = frozenset({
    "password_changed", "password_reset", "mfa_enabled", "mfa_disabled", "mfa_replaced", "backup_codes_regenerated",
    "email_changed",
})


def notify(services: Services, account: Account, what: str, *, locale: str, to: str | None = None) -> bool:
    """Queue the notice ``what`` for ``account`` (to its verified address, or to ``to``). True if queued."""
    if what not in CHANGES:
        raise ValueError(f"unknown notice {what}")
    address = to or (account.email if account.email_verified else None)
    if not services.mailer.enabled or not address:
        return False
    try:
        mail_locale = account.locale if account.locale in ("es", "en") else locale
        message = services.mailer.compose(
            address, "security_notice", locale=mail_locale, username=account.username, what=what,
            when=services.clock.now().strftime("%Y-%m-%d %H:%M UTC"), issuer=services.settings.server.issuer,
        )
        services.mailer.send_later(message)
    except Exception:  # a notice must never break the change it reports
        log.exception("security notice %s could not be queued", what)
        return False
    return True
