"""Client secrets that rotate themselves: the hourly job, and how the new secret reaches the client's owner.

Every secret gets ``client_secrets.lifetime`` (90 days) at issue. The job (``client_secret_rotation`` on
the single-runner scheduler, authserver/jobs.py) finds live secrets that expire within
``client_secrets.rotate_before`` (7 days) and have no successor, and issues one under the same label.

Delivery (decided here; docs/operations.md "Client secret expiry and rotation"):

- The new value is kept **encrypted** (the Encryptor, AAD bound to the row) in ``pending_secret_encrypted``
  until it reaches the owner, then erased. Only its SHA-256 digest stays, as for every secret.
- If the client has a ``notification_webhook`` (https; plain http only to a loopback address outside
  production) the job POSTs the new secret there as JSON, signed the Standard Webhooks way
  (``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>``)
  with the client's own webhook key (``whsec_…``, shown once when the webhook is set, stored encrypted).
  Each attempt waits at most ``client_secrets.webhook_timeout``; a run makes ``webhook_attempts`` attempts
  (0.2 s, 0.4 s … apart, on 408, 429, 5xx and network errors) and the next runs try again while the secret
  is pending. Redirects are not followed.
- Otherwise the owner takes it once with ``POST /admin/api/clients/{id}/secrets/{secret_id}/reveal`` or
  ``authserver client secret reveal``.
- ``owner_email`` gets a mail saying what rotated and how to take the new value, **never the secret**
  (mail is stored and forwarded in clear; a leaked mailbox must not leak a credential).
- The old secret keeps its own expiry (at most ``rotate_before``) until the new one is delivered or revealed;
  only then does its grace (``admin.secret_rotation_grace``, 24 h) start, so a slow owner never loses the
  old secret before having the new one.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

from authserver.services import Services
from authserver.storage.sql.clients import ClientInfo, pending_aad, webhook_aad
from authserver.storage.sql.models import ClientSecret

log = logging.getLogger("authserver.secret_rotation")

WEBHOOK_SECRET_PREFIX = "whsec_"
RETRY_BASE = 0.2
RETRIED_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
LOOPBACK_NAMES = frozenset({"localhost"})


def new_webhook_secret() -> str:
    """A Standard Webhooks signing key: ``whsec_`` and the base64 of 32 random bytes."""
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def webhook_problem(url: str, *, production: bool) -> str | None:
    """Why ``url`` cannot be a notification webhook (None: it can)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "must be an absolute https URL"
    if not host or parts.username or parts.password or parts.fragment:
        return "must be an absolute https URL without user information or fragment"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and not production and _is_loopback(host):
        return None
    return "must be https (plain http only to a loopback address outside production)"


def signature(webhook_secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks v1: base64 HMAC-SHA256 over ``{id}.{timestamp}.{body}`` with the decoded key."""
    key = base64.b64decode(webhook_secret.removeprefix(WEBHOOK_SECRET_PREFIX))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


async def post_webhook(
    url: str, webhook_secret: str, payload: dict[str, Any], *, now: datetime, timeout: float, attempts: int,
) -> bool:
    """POST ``payload`` signed; True once the receiver answers 2xx. Bounded: ``attempts`` tries of at most
    ``timeout`` seconds each."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    message_id = "msg_" + secrets.token_hex(16)
    timestamp = int(now.timestamp())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "authserver-webhook/1",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(webhook_secret, message_id, timestamp, body),
    }
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as http:
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(RETRY_BASE * 2 ** (attempt - 1))
            try:
                response = await http.post(url, content=body, headers=headers)
            except httpx.HTTPError as error:
                log.warning("webhook %s: attempt %d failed: %s", message_id, attempt + 1, type(error).__name__)
                continue
            if 200 <= response.status_code < 300:
                return True
            log.warning("webhook %s: attempt %d answered %d", message_id, attempt + 1, response.status_code)
            if response.status_code not in RETRIED_STATUSES:
                return False
    return False


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class SecretRotation:
    """The job's work, and the delivery used by it and by ``reveal``."""

    def __init__(self, services: Services) -> None:
        self._s = services

    @property
    def _grace(self) -> int:
        return self._s.settings.admin.secret_rotation_grace

    def _webhook_secret(self, client: ClientInfo, encrypted: str | None) -> str | None:
        if not client.notification_webhook or not encrypted:
            return None
        return self._s.encryptor.decrypt(encrypted, aad=webhook_aad(client.client_id)).decode()

    async def _webhook_key(self, client_id: str) -> str | None:
        from authserver.storage.sql.models import Client

        async with self._s.sessions() as session:
            row = await session.get(Client, client_id)
            return row.webhook_secret_encrypted if row is not None else None

    async def run(self) -> dict[str, int]:
        """One pass: retry undelivered secrets, then rotate those nearing expiry. Counts for logs and tests.
        A failure with one secret (a key that no longer decrypts, say) is logged and skips only that one."""
        counts = {"rotated": 0, "delivered": 0, "undelivered": 0, "mailed": 0, "failed": 0}
        for row in await self._s.clients.undelivered():
            try:
                await self._retry(row, counts)
            except Exception:
                log.exception("client secret %s: delivery retry failed", row.id)
                counts["failed"] += 1
        own = self._s.settings.client_secrets
        if own.lifetime:
            for old in await self._s.clients.expiring(within=own.rotate_before):
                try:
                    await self._rotate(old, counts)
                except Exception:
                    log.exception("client secret %s: rotation failed; tried again at the next run", old.id)
                    counts["failed"] += 1
        if any(counts.values()):
            log.info("client secret rotation: %s", counts)
        return counts

    async def _retry(self, row: ClientSecret, counts: dict[str, int]) -> None:
        client = await self._s.clients.refresh(row.client_id)
        if client is None or not client.notification_webhook or row.pending_secret_encrypted is None:
            return
        secret = self._s.encryptor.decrypt(row.pending_secret_encrypted, aad=pending_aad(row.id)).decode()
        counts["delivered" if await self._deliver(client, row, secret) else "undelivered"] += 1

    async def _rotate(self, old: ClientSecret, counts: dict[str, int]) -> None:
        result = await self._s.clients.auto_rotate(
            old.id, seal=lambda value, new_id: self._s.encryptor.encrypt(value.encode(), aad=pending_aad(new_id))
        )
        if result is None:
            return  # rotated meanwhile by an operator or another instance
        secret, new = result
        counts["rotated"] += 1
        await self._s.events.record(
            "client_secret.rotated", "success", client_id=new.client_id, by="schedule", label=new.label,
            secret_id=new.id, replaces=old.id, old_expires_at=_iso(old.expires_at),
        )
        client = await self._s.clients.get(new.client_id)
        if client is None:
            return
        delivered = False
        if client.notification_webhook:
            delivered = await self._deliver(client, new, secret)
            counts["delivered" if delivered else "undelivered"] += 1
        if client.owner_email and await self._mail(client, old, new, delivered):
            counts["mailed"] += 1

    async def _deliver(self, client: ClientInfo, new: ClientSecret, secret: str) -> bool:
        key = self._webhook_secret(client, await self._webhook_key(client.client_id))
        if key is None or client.notification_webhook is None:
            return False
        now = self._s.clock.now()
        old_end = await self._replaced_expiry(new)
        payload = {
            "type": "client_secret.rotated",
            "issuer": self._s.settings.server.issuer,
            "client_id": client.client_id,
            "secret": {
                "id": new.id, "label": new.label, "client_secret": secret,
                "created_at": _iso(new.created_at), "expires_at": _iso(new.expires_at),
            },
            "previous_secret": {"id": new.replaces_id, "expires_at": _iso(old_end)},
            "grace_seconds": self._grace,
            "sent_at": now.isoformat(),
        }
        own = self._s.settings.client_secrets
        ok = await post_webhook(
            client.notification_webhook, key, payload, now=now, timeout=own.webhook_timeout, attempts=own.webhook_attempts,
        )
        if ok:
            await self._s.clients.delivered(new.id)
            await self._s.clients.start_grace(new.id, grace_seconds=self._grace)
        await self._s.events.record(
            "client_secret.delivered", "success" if ok else "failure", client_id=client.client_id, via="webhook",
            secret_id=new.id,
        )
        return ok

    async def _replaced_expiry(self, new: ClientSecret) -> datetime | None:
        """When the replaced secret ends if the grace starts now."""
        end = self._s.clock.now() + timedelta(seconds=self._grace)
        if new.replaces_id is None:
            return None
        async with self._s.sessions() as session:
            old = await session.get(ClientSecret, new.replaces_id)
        if old is None or old.expires_at is None:
            return end
        return min(old.expires_at, end)

    async def _mail(self, client: ClientInfo, old: ClientSecret, new: ClientSecret, delivered: bool) -> bool:
        mailer = self._s.mailer
        if not mailer.enabled or client.owner_email is None:
            return False
        old_end = (await self._replaced_expiry(new)) if delivered else old.expires_at
        issuer = self._s.settings.server.issuer
        try:
            message = mailer.compose(
                client.owner_email, "secret_rotated", locale=self._s.settings.login.default_locale,
                client_name=client.name, client_id=client.client_id, label=new.label, secret_id=new.id,
                expires_at=_iso(new.expires_at), old_expires_at=_iso(old_end), delivered=delivered,
                webhook=client.notification_webhook, grace_hours=self._grace // 3600,
                reveal_url=f"{issuer}/admin/api/clients/{client.client_id}/secrets/{new.id}/reveal",
            )
            await mailer.send(message)
        except Exception as error:  # noqa: BLE001 - a mail failure never stops the job
            log.error("secret rotation mail for client %s failed: %s", client.client_id, type(error).__name__)
            return False
        await self._s.events.record(
            "client_secret.notified", "success", client_id=client.client_id, via="email", secret_id=new.id,
        )
        return True

    async def reveal(self, client_id: str, secret_id: int) -> tuple[ClientSecret, str, datetime | None] | None:
        """Take an undelivered secret once: its row, the value, and when the replaced secret now ends."""
        claimed = await self._s.clients.claim_pending(
            client_id, secret_id, unseal=lambda sealed, row_id: self._s.encryptor.decrypt(sealed, aad=pending_aad(row_id)).decode()
        )
        if claimed is None:
            return None
        row, secret = claimed
        ends = await self._s.clients.start_grace(row.id, grace_seconds=self._grace)
        return row, secret, ends
