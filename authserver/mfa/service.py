"""The second factor as a whole: enrolment, verification with replay and guessing limits, backup codes.

No HTTP here: the web pages and the JSON API both call this. Secrets never leave it in events or logs.

Guessing (RFC 4226 §7.3, ASVS 5 §6.3.1): each account has a durable failure window in the database;
``max_failures`` wrong codes (or wrong passwords when turning MFA off) within ``failure_window`` seconds
lock the second step for ``lockout_seconds``. Nothing about it lives in Redis, so neither an outage nor
a flush of the cache gives an attacker more attempts (SPEC R-04, R-06).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from authserver.accounts.passwords import Passwords
from authserver.clock import Clock
from authserver.events import SecurityEvents
from authserver.keys.encryption import DecryptionError, Encryptor
from authserver.mfa import backup_codes, totp
from authserver.settings import MfaSettings
from authserver.storage.sql.accounts import SqlAccountStore
from authserver.storage.sql.mfa import Attempt, SqlMfaStore
from authserver.storage.sql.models import Account

log = logging.getLogger("authserver.mfa")

# RFC 8176 §2 values for a session that passed the second step.
AMR_AFTER_TOTP = ["pwd", "otp", "mfa"]
# Authentication context classes (OIDC Core §2 `acr`) this server asserts and accepts in acr_values.
ACR_PASSWORD = "urn:cmipro:acr:pwd"
ACR_MFA = "urn:cmipro:acr:mfa"
MFA_ACR_VALUES = frozenset({ACR_MFA, "mfa", "http://schemas.openid.net/pape/policies/2007/06/multi-factor"})
# Warn the person when this many backup codes or fewer remain.
LOW_BACKUP_CODES = 2

Method = Literal["totp", "backup_code"]


class MfaError(Exception):
    """Base of what the pages and the API translate into a message or an error code."""


class AlreadyEnabled(MfaError):
    pass


class NotEnabled(MfaError):
    pass


class NoPendingEnrolment(MfaError):
    pass


class SecretUnavailable(MfaError):
    """The stored secret cannot be decrypted (key missing or data damaged): deny, never skip (SPEC R-18)."""


@dataclass(frozen=True)
class Enrolment:
    secret: str
    otpauth_uri: str


@dataclass(frozen=True)
class Outcome:
    ok: bool
    method: Method | None = None
    # Why it failed: "invalid", "replay", "bad_password", "locked".
    reason: str | None = None
    locked_until: datetime | None = None
    backup_codes_remaining: int | None = None


@dataclass(frozen=True)
class Status:
    enabled: bool
    backup_codes_remaining: int

    @property
    def backup_codes_low(self) -> bool:
        return self.enabled and self.backup_codes_remaining <= LOW_BACKUP_CODES


@dataclass
class Context:
    """Who is asking, for the security events."""

    ip: str | None = None
    user_agent: str | None = None
    client_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def is_enrolled(account: Account) -> bool:
    return account.totp_enabled_at is not None and account.totp_secret_encrypted is not None


class MfaService:
    def __init__(
        self,
        *,
        store: SqlMfaStore,
        accounts: SqlAccountStore,
        encryptor: Encryptor,
        passwords: Passwords,
        events: SecurityEvents,
        clock: Clock,
        settings: MfaSettings,
    ) -> None:
        self._store = store
        self._accounts = accounts
        self._encryptor = encryptor
        self._passwords = passwords
        self._events = events
        self._clock = clock
        self.settings = settings

    # --- reading -----------------------------------------------------------------------------------

    async def status(self, account: Account) -> Status:
        enabled = is_enrolled(account)
        remaining = await self._store.count_unused_backup_codes(account.account_id) if enabled else 0
        return Status(enabled, remaining)

    async def locked_until(self, account_id: str) -> datetime | None:
        return await self._store.locked_until(account_id)

    def required_roles(self) -> frozenset[str]:
        return frozenset(self.settings.required_roles)

    # --- enrolment -----------------------------------------------------------------------------------

    async def start_enrolment(self, account: Account, context: Context) -> Enrolment:
        """A secret to show (the pending one if enrolment already began, so a reload does not change it)."""
        if is_enrolled(account):
            raise AlreadyEnabled()
        secret: str | None = None
        if account.totp_secret_encrypted:
            try:
                secret = self._decrypt(account.account_id, account.totp_secret_encrypted)
            except SecretUnavailable:
                secret = None
        if secret is None:
            secret = totp.new_secret()
            if not await self._store.set_pending_secret(account.account_id, self._encrypt(account.account_id, secret)):
                raise AlreadyEnabled()
            await self._event("mfa.enrolment", "started", account.account_id, context)
        uri = totp.provisioning_uri(secret, account_name=account.username, issuer=self.settings.issuer)
        return Enrolment(secret, uri)

    async def confirm_enrolment(self, account_id: str, code: str, context: Context) -> list[str] | None:
        """Enable TOTP if ``code`` is current for the pending secret; returns the new backup codes (shown once)."""
        account = await self._accounts.get(account_id)
        if account is None:
            raise NoPendingEnrolment()
        if is_enrolled(account):
            raise AlreadyEnabled()
        if not account.totp_secret_encrypted:
            raise NoPendingEnrolment()
        secret = self._decrypt(account_id, account.totp_secret_encrypted)
        step = totp.matching_step(secret, code, now=self._clock.now())
        if step is None:
            await self._event("mfa.enrolment", "failure", account_id, context, reason="invalid")
            return None
        codes = backup_codes.generate(self.settings.backup_code_count)
        hashes = [backup_codes.hash_code(c) for c in codes]
        if not await self._store.enable(account_id, encrypted=account.totp_secret_encrypted, step=step, backup_code_hashes=hashes):
            raise NoPendingEnrolment()
        await self._event("mfa.enrolment", "success", account_id, context, backup_codes_issued=len(codes))
        return codes

    # --- the second step ------------------------------------------------------------------------------

    async def verify(self, account_id: str, *, code: str, method: Method, context: Context) -> Outcome:
        """Check a TOTP or backup code for an enrolled account, counting attempts and honouring the lock."""
        account = await self._accounts.get(account_id)
        if account is None or not is_enrolled(account):
            raise NotEnabled()
        attempt = await self._begin(account_id, method, context, event="mfa.verify")
        if not attempt.allowed:
            return Outcome(False, method, "locked", attempt.locked_until)
        return await self._conclude(account_id, attempt, await self._check(account, code, method), context)

    async def _begin(self, account_id: str, method: Method, context: Context, *, event: str) -> Attempt:
        settings = self.settings
        attempt = await self._store.begin_attempt(
            account_id, window=settings.failure_window, max_failures=settings.max_failures, lockout=settings.lockout_seconds
        )
        if not attempt.allowed:
            await self._event(event, "failure", account_id, context, method=method, reason="locked")
        return attempt

    async def _check(self, account: Account, code: str, method: Method) -> Outcome:
        if method == "totp":
            return await self._check_totp(account, code)
        return await self._check_backup_code(account.account_id, code)

    async def _check_totp(self, account: Account, code: str) -> Outcome:
        assert account.totp_secret_encrypted is not None
        secret = self._decrypt(account.account_id, account.totp_secret_encrypted)
        step = totp.matching_step(secret, code, now=self._clock.now())
        if step is None:
            return Outcome(False, "totp", "invalid")
        if not await self._store.claim_totp_step(account.account_id, step):
            return Outcome(False, "totp", "replay")
        if self._encryptor.needs_reencrypt(account.totp_secret_encrypted):
            await self._store.reencrypt_secret(
                account.account_id, old=account.totp_secret_encrypted, new=self._encrypt(account.account_id, secret)
            )
        return Outcome(True, "totp")

    async def _check_backup_code(self, account_id: str, code: str) -> Outcome:
        normalised = backup_codes.normalise(code)
        rows = await self._store.unused_backup_codes(account_id)
        match = None
        for row in rows:  # check every row: the time taken does not depend on which one matches
            if normalised is not None and backup_codes.matches(row.code_hash, normalised) and match is None:
                match = row
        if match is None or not await self._store.use_backup_code(match.id):
            return Outcome(False, "backup_code", "invalid")
        return Outcome(True, "backup_code", backup_codes_remaining=len(rows) - 1)

    async def _conclude(self, account_id: str, attempt: Attempt, outcome: Outcome, context: Context) -> Outcome:
        if outcome.ok:
            await self._store.clear_failures(account_id)
            await self._event("mfa.verify", "success", account_id, context, method=outcome.method)
            if outcome.method == "backup_code":
                await self._event(
                    "mfa.backup_code", "used", account_id, context, remaining=outcome.backup_codes_remaining
                )
            return outcome
        settings = self.settings
        locked_until = await self._store.fail_attempt(
            account_id, attempt, max_failures=settings.max_failures, lockout=settings.lockout_seconds
        )
        await self._event(
            "mfa.verify", "failure", account_id, context, method=outcome.method, reason=outcome.reason,
            attempts=attempt.number,
        )
        if locked_until is not None:
            await self._event("mfa.lock", "locked", account_id, context, until=locked_until.isoformat())
            return Outcome(False, outcome.method, "locked", locked_until)
        return outcome

    # --- managing --------------------------------------------------------------------------------------

    async def regenerate_backup_codes(self, account_id: str, *, code: str, method: Method, context: Context) -> tuple[Outcome, list[str]]:
        """New backup codes after proving a current code; the old ones stop working at once."""
        outcome = await self.verify(account_id, code=code, method=method, context=context)
        if not outcome.ok:
            return outcome, []
        codes = backup_codes.generate(self.settings.backup_code_count)
        await self._store.replace_backup_codes(account_id, [backup_codes.hash_code(c) for c in codes])
        await self._event("mfa.backup_codes", "regenerated", account_id, context, count=len(codes))
        return outcome, codes

    async def disable(self, account_id: str, *, password: str, code: str, method: Method, context: Context) -> Outcome:
        """Turn MFA off: needs the password and a current code (or backup code); both count towards the lock."""
        account = await self._accounts.get(account_id)
        if account is None or not is_enrolled(account):
            raise NotEnabled()
        attempt = await self._begin(account_id, method, context, event="mfa.disable")
        if not attempt.allowed:
            return Outcome(False, method, "locked", attempt.locked_until)
        if not await self._passwords.verify(account.password_hash, password):
            outcome = await self._conclude(account_id, attempt, Outcome(False, method, "bad_password"), context)
        else:
            outcome = await self._conclude(account_id, attempt, await self._check(account, code, method), context)
        if not outcome.ok:
            await self._event("mfa.disable", "failure", account_id, context, reason=outcome.reason)
            return outcome
        await self._store.disable(account_id)
        await self._event("mfa.disable", "success", account_id, context)
        return outcome

    async def recover(self, account_id: str, context: Context) -> None:
        """The person signed in with a backup code and sets up a new authenticator: the lost one's secret and
        the remaining backup codes are removed now (web/mfa_views.account_mfa_recover)."""
        await self._store.disable(account_id)
        await self._event("mfa.disable", "recovery", account_id, context)

    async def reset(self, account_id: str, context: Context) -> None:
        """An operator removes the second factor (lost phone and backup codes); recorded as a security event."""
        await self._store.disable(account_id)
        await self._event("mfa.disable", "admin_reset", account_id, context)

    # --- helpers -------------------------------------------------------------------------------------------

    def _encrypt(self, account_id: str, secret: str) -> str:
        return self._encryptor.encrypt(secret.encode("ascii"), aad=account_id.encode())

    def _decrypt(self, account_id: str, encrypted: str) -> str:
        try:
            return self._encryptor.decrypt(encrypted, aad=account_id.encode()).decode("ascii")
        except DecryptionError:
            log.error("TOTP secret of account %s cannot be decrypted; second factor denied", account_id)
            raise SecretUnavailable() from None

    async def _event(self, event: str, outcome: str, account_id: str, context: Context, **details: Any) -> None:
        await self._events.record(
            event, outcome, account_id=account_id, client_id=context.client_id, ip=context.ip,
            user_agent=context.user_agent, **context.extra, **details,
        )
