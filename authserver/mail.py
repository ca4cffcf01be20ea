"""Outgoing mail: password-reset links (and, later, address verification) over SMTP with aiosmtplib.

Each mail is multipart/alternative: a plain-text part and an HTML part, both rendered from templates
in ``web/templates/mail/`` in the person's language, the subject from the message catalogue.

Mail leaves the request: :meth:`Mailer.send_later` queues the message and a background task talks to the
SMTP server, so a page answers in the same time whether or not a mail was sent (no account
enumeration by timing) and a slow SMTP server never holds a request. A failed delivery is logged with
the request id; it is not retried (the person can ask again). ``mail.host`` empty: mail is off and
``enabled`` is False; pages that need it say so.
"""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiosmtplib
from jinja2 import Environment

from authserver.settings import MailSettings
from authserver.web.i18n import translate

log = logging.getLogger("authserver.mail")

# Mail waiting for the SMTP server at once per instance; past this, new mail is dropped (and logged).
MAX_PENDING = 100


class MailDisabled(RuntimeError):
    pass


class Mailer:
    def __init__(self, settings: MailSettings, templates: Environment) -> None:
        self._settings = settings
        self._templates = templates
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    def compose(self, to: str, template: str, *, locale: str, **context: Any) -> EmailMessage:
        """The message for ``mail/<template>.txt`` and ``.html``, subject ``mail.<template>.subject``."""
        if "\n" in to or "\r" in to:
            raise ValueError("invalid recipient")

        def t(key: str, **values: object) -> str:
            return translate(locale, key, **values)

        values = {"locale": locale, "t": t, **context}
        message = EmailMessage()
        message["From"] = self._settings.sender
        message["To"] = to
        message["Subject"] = t(f"mail.{template}.subject")
        message["Date"] = formatdate(localtime=False, usegmt=True)
        domain = self._settings.sender.rpartition("@")[2].strip(" >") or None
        message["Message-ID"] = make_msgid(domain=domain)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(self._templates.get_template(f"mail/{template}.txt").render(values))
        message.add_alternative(self._templates.get_template(f"mail/{template}.html").render(values), subtype="html")
        message["Content-Language"] = locale  # after add_alternative, which moves Content-* headers into the parts
        return message

    async def send(self, message: EmailMessage) -> None:
        """Deliver now (raises aiosmtplib's errors); ``send_later`` is what pages use."""
        s = self._settings
        if not s.enabled:
            raise MailDisabled("mail.host is not set")
        await aiosmtplib.send(
            message,
            hostname=s.host,
            port=s.port,
            use_tls=s.security == "tls",
            start_tls=s.security == "starttls",  # explicit: aiosmtplib's default None would upgrade only opportunistically
            username=s.username or None,
            password=str(s.password) or None,
            timeout=s.timeout,
        )

    def send_later(self, message: EmailMessage) -> None:
        if len(self._pending) >= MAX_PENDING:
            log.error("mail queue full; dropping a mail to the SMTP server (subject %r)", message["Subject"])
            return
        task = asyncio.create_task(self._deliver(message))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, message: EmailMessage) -> None:
        try:
            await self.send(message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError, MailDisabled) as error:
            log.error("mail delivery failed: %s", type(error).__name__)

    async def drain(self) -> None:
        """Wait for queued mail (shutdown, tests)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def close(self) -> None:
        await self.drain()
