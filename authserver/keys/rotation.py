"""Signing-key rotation (OIDC Core §10.1.1, RFC 7517 §5): publish first, sign later, retire slowly.

Each key moves ``next`` (published, not signing) → ``active`` (signing) → ``retired`` (published, not
signing) → removed; ``revoked`` (compromise) leaves the JWKS at once. Two parts:

- :func:`plan_rotation` is pure: key rows + now + :class:`RotationPolicy` in, a :class:`RotationPlan` out.
- :class:`KeyManager` applies a plan in one transaction under a PostgreSQL advisory lock (the lock and
  a plan computed from the rows read under it make the job idempotent: N instances, one rotation), and
  offers the operator actions (list, rotate now, revoke, re-encrypt) to the CLI and the admin API.

Timing (every instance reloads its keys every ``reload_interval`` = R seconds; verifiers cache the JWKS
for ``jwks_max_age`` = M seconds):

- a ``next`` key is activated no sooner than ``publish_ahead`` ≥ M + R after it was stored, so every
  verifier that honours ``max-age`` holds it before any token signed with it exists;
- a retired key stays published until ``retired_at + R + longest token lifetime + retire_leeway``: the
  instances that have not reloaded yet may still sign with it for R seconds, and its tokens live that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.clock import Clock
from authserver.events import SecurityEvents
from authserver.keys.encryption import DecryptionError, Encryptor
from authserver.keys.keystore import KEYS_LOCK_ID, PUBLISHED_STATES, KeyStore, new_signing_key_row
from authserver.settings import Settings
from authserver.storage.sql.clients import pending_aad, webhook_aad
from authserver.storage.sql.models import Account, Client, ClientSecret, SigningKey

__all__ = [
    "KeyInfo",
    "KeyManager",
    "KeyNotFound",
    "RotationNotReady",
    "RotationPlan",
    "RotationPolicy",
    "plan_rotation",
    "policy_from_settings",
]

log = logging.getLogger("authserver.keys")


class RotationNotReady(Exception):
    """An operator asked to rotate, but the next key has not been published long enough (use force)."""

    def __init__(self, alg: str, ready_at: datetime) -> None:
        super().__init__(f"the next {alg} key is published since too short a time; it can sign from {ready_at.isoformat()}")
        self.alg = alg
        self.ready_at = ready_at


class KeyNotFound(LookupError):
    """No signing key has this kid (or it was already removed)."""


@dataclass(frozen=True)
class KeyRow:
    """What the schedule needs to know about one stored key."""

    kid: str
    alg: str
    state: str
    created_at: datetime
    activated_at: datetime | None = None
    retired_at: datetime | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class RotationPolicy:
    algorithms: tuple[str, ...]
    rotation_interval: timedelta
    publish_ahead: timedelta
    # How long a retired key stays published: R + the longest token lifetime + leeway.
    retain_after_retire: timedelta


@dataclass
class RotationPlan:
    create: list[tuple[str, str]] = field(default_factory=list)  # (alg, state)
    activate: list[str] = field(default_factory=list)
    retire: list[tuple[str, datetime]] = field(default_factory=list)  # (kid, expires_at)
    remove: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.create or self.activate or self.retire or self.remove)


def policy_from_settings(settings: Settings, *, longest_client_token_ttl: int | None = None) -> RotationPolicy:
    keys, tokens = settings.keys, settings.tokens
    longest = max(tokens.access_token_ttl, tokens.id_token_ttl, longest_client_token_ttl or 0)
    return RotationPolicy(
        algorithms=configured_algorithms(settings),
        rotation_interval=timedelta(seconds=keys.rotation_interval),
        publish_ahead=timedelta(seconds=keys.publish_ahead),
        retain_after_retire=timedelta(seconds=keys.reload_interval + longest + keys.retire_leeway),
    )


def configured_algorithms(settings: Settings) -> tuple[str, ...]:
    """The default signing algorithm first, then the others configured, without repeats."""
    return tuple(dict.fromkeys((settings.tokens.signing_alg, *settings.keys.algorithms)))


def plan_rotation(
    rows: Sequence[KeyRow],
    now: datetime,
    policy: RotationPolicy,
    *,
    rotate_now: Iterable[str] = (),
    force: bool = False,
) -> RotationPlan:
    """Decide the transitions due at ``now``; an empty plan when nothing is due (the job is idempotent).

    ``rotate_now`` names algorithms whose active key an operator wants replaced before its time; the
    next key must still have been published for ``publish_ahead`` unless ``force`` (then verifiers that
    cached the JWKS see an unknown kid until they refetch). Raises :class:`RotationNotReady` otherwise.
    """
    plan = RotationPlan()
    wanted = set(rotate_now)
    for alg in sorted({r.alg for r in rows} | set(policy.algorithms)):
        mine = [r for r in rows if r.alg == alg]
        actives = sorted(
            (r for r in mine if r.state == "active"), key=lambda r: (r.activated_at or r.created_at, r.kid)
        )
        nexts = sorted((r for r in mine if r.state == "next"), key=lambda r: (r.created_at, r.kid))
        for row in mine:
            if row.state == "retired" and row.expires_at is not None and row.expires_at <= now:
                plan.remove.append(row.kid)
            elif row.state == "retired" and row.expires_at is None:
                plan.retire.append((row.kid, now + policy.retain_after_retire))
        if alg not in policy.algorithms:
            # An algorithm taken out of the configuration: stop signing with it, let its tokens expire.
            plan.retire.extend((r.kid, now + policy.retain_after_retire) for r in actives)
            plan.remove.extend(r.kid for r in nexts)
            continue
        current = actives[-1] if actives else None
        # Two active keys of one algorithm (should not happen): keep the newest signing.
        plan.retire.extend((r.kid, now + policy.retain_after_retire) for r in actives[:-1])
        candidate = nexts[0] if nexts else None
        due = (
            current is None
            or alg in wanted
            or now >= (current.activated_at or current.created_at) + policy.rotation_interval
        )
        ready = candidate is not None and (force or now >= candidate.created_at + policy.publish_ahead)
        if due and ready and candidate is not None:
            plan.activate.append(candidate.kid)
            if current is not None:
                plan.retire.append((current.kid, now + policy.retain_after_retire))
            if len(nexts) == 1:
                plan.create.append((alg, "next"))
        elif due and alg in wanted and force:
            # Forced rotation without a published successor: sign at once with a brand-new key.
            plan.create.append((alg, "active"))
            if current is not None:
                plan.retire.append((current.kid, now + policy.retain_after_retire))
            plan.create.append((alg, "next"))
        elif due and alg in wanted and candidate is not None:
            raise RotationNotReady(alg, candidate.created_at + policy.publish_ahead)
        elif candidate is None:
            # Always keep a successor published, so the next rotation (or an emergency) finds one ready.
            plan.create.append((alg, "next"))
    return plan


@dataclass(frozen=True)
class KeyInfo:
    """One key as operators see it (CLI `keys list`, admin API): no key material beyond the public JWK."""

    kid: str
    alg: str
    state: str
    created_at: datetime
    activated_at: datetime | None
    retired_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None
    # When a next key may start signing (created_at + publish_ahead).
    ready_at: datetime | None
    # Encrypted with a key-encryption key other than the active one (run `authserver keys reencrypt`).
    needs_reencrypt: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            name: (value.isoformat() if isinstance(value, datetime) else value)
            for name, value in self.__dict__.items()
        }


# Encrypted columns, their primary key and the associated data that binds a ciphertext to its row.
ENCRYPTED_COLUMNS: tuple[tuple[Any, str, str, Any], ...] = (
    (SigningKey, "kid", "private_key_encrypted", lambda kid: kid.encode()),
    # bound to the bare account id, as authserver.mfa.service encrypts it
    (Account, "account_id", "totp_secret_encrypted", lambda account_id: account_id.encode()),
    # client secrets' rotation (authserver.secret_rotation): webhook signing keys and undelivered secrets
    (Client, "client_id", "webhook_secret_encrypted", webhook_aad),
    (ClientSecret, "id", "pending_secret_encrypted", pending_aad),
)


class KeyManager:
    """Applies the rotation schedule and the operator actions; reloads this instance's key store after each."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        encryptor: Encryptor,
        keystore: KeyStore,
        settings: Settings,
        *,
        events: SecurityEvents | None = None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._encryptor = encryptor
        self.keystore = keystore
        self.settings = settings
        self._events = events

    # -- the schedule -------------------------------------------------------------------------

    async def run_scheduled(self) -> RotationPlan:
        """One pass of the schedule (every instance calls this every reload_interval; one does the work)."""
        return await self._apply(rotate_now=(), force=False)

    async def rotate_now(self, alg: str | None = None, *, force: bool = False) -> list[str]:
        """Operator rotation: activate the published next key of ``alg`` (all algorithms by default)."""
        algs = (alg,) if alg else configured_algorithms(self.settings)
        plan = await self._apply(rotate_now=algs, force=force)
        return list(plan.activate)

    async def tick(self) -> None:
        """Run the schedule (when auto_rotate) and reload: what the background task does each period."""
        if self.settings.keys.auto_rotate:
            await self.run_scheduled()
        await self.keystore.load()

    async def run_forever(self) -> None:
        """The lifespan task: tick every reload_interval; a failed tick keeps the keys already in memory."""
        interval = self.settings.keys.reload_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not stop future reloads
                log.exception("signing-key reload failed; serving the keys loaded before")

    async def _apply(self, *, rotate_now: Iterable[str], force: bool) -> RotationPlan:
        now = self._clock.now()
        async with self._sessions.begin() as session:
            await _lock(session)
            stored = (await session.scalars(select(SigningKey).where(SigningKey.state.in_(PUBLISHED_STATES)))).all()
            longest_client_ttl = await session.scalar(select(func.max(Client.access_token_ttl)))
            policy = policy_from_settings(self.settings, longest_client_token_ttl=longest_client_ttl)
            rows = [
                KeyRow(r.kid, r.alg, r.state, r.created_at, r.activated_at, r.retired_at, r.expires_at) for r in stored
            ]
            plan = plan_rotation(rows, now, policy, rotate_now=rotate_now, force=force)
            if not plan:
                return plan
            by_kid = {r.kid: r for r in stored}
            for kid, expires_at in plan.retire:
                row = by_kid[kid]
                if row.state != "retired":
                    row.state, row.retired_at = "retired", now
                row.expires_at = expires_at
            for kid in plan.activate:
                by_kid[kid].state, by_kid[kid].activated_at = "active", now
            if plan.remove:
                await session.execute(delete(SigningKey).where(SigningKey.kid.in_(plan.remove)))
            created: list[str] = []
            for alg, state in plan.create:
                row = await new_signing_key_row(alg, state=state, now=now, encryptor=self._encryptor)
                session.add(row)
                created.append(f"{row.kid}:{alg}:{state}")
        log.info(
            "signing keys: activated %s, retired %s, removed %s, created %s",
            plan.activate, [k for k, _ in plan.retire], plan.remove, created,
        )
        await self._record("keys.rotated", activated=plan.activate, retired=[k for k, _ in plan.retire],
                           removed=plan.remove, created=created, forced=force, on_request=bool(list(rotate_now)))
        await self.keystore.load()
        return plan

    # -- operator actions ----------------------------------------------------------------------

    async def list_keys(self) -> list[KeyInfo]:
        publish_ahead = timedelta(seconds=self.settings.keys.publish_ahead)
        async with self._sessions() as session:
            rows = (await session.scalars(select(SigningKey).order_by(SigningKey.created_at, SigningKey.kid))).all()
        return [
            KeyInfo(
                kid=r.kid, alg=r.alg, state=r.state, created_at=r.created_at, activated_at=r.activated_at,
                retired_at=r.retired_at, expires_at=r.expires_at, revoked_at=r.revoked_at,
                ready_at=r.created_at + publish_ahead if r.state == "next" else None,
                needs_reencrypt=self._encryptor.needs_reencrypt(r.private_key_encrypted),
            )
            for r in rows
        ]

    async def revoke(self, kid: str) -> list[str]:
        """Emergency: the key leaves the JWKS now and its tokens fail on purpose; returns the kids now signing.

        If it was signing, its algorithm's oldest next key signs at once (published, but perhaps for less
        than publish_ahead: verifiers with a cached JWKS refetch on the unknown kid), or a new key if none.
        """
        now = self._clock.now()
        promoted: list[str] = []
        async with self._sessions.begin() as session:
            await _lock(session)
            row = await session.get(SigningKey, kid)
            if row is None:
                raise KeyNotFound(kid)
            if row.state == "revoked":
                return []
            was_active = row.state == "active"
            row.state, row.revoked_at, row.expires_at = "revoked", now, now
            if was_active:
                nexts = (
                    await session.scalars(
                        select(SigningKey)
                        .where(SigningKey.alg == row.alg, SigningKey.state == "next")
                        .order_by(SigningKey.created_at, SigningKey.kid)
                    )
                ).all()
                if nexts:
                    nexts[0].state, nexts[0].activated_at = "active", now
                    promoted.append(nexts[0].kid)
                else:
                    fresh = await new_signing_key_row(row.alg, state="active", now=now, encryptor=self._encryptor)
                    session.add(fresh)
                    promoted.append(fresh.kid)
                if len(nexts) <= 1:
                    session.add(await new_signing_key_row(row.alg, state="next", now=now, encryptor=self._encryptor))
        log.warning("signing key %s revoked; now signing with %s", kid, promoted)
        await self._record("keys.revoked", kid=kid, alg=row.alg, was_active=was_active, promoted=promoted)
        await self.keystore.load()
        return promoted

    async def reencrypt(self) -> dict[str, int]:
        """Re-encrypt private keys and TOTP secrets with the active key-encryption key (KEK rotation).

        Returns counts: ``reencrypted`` rows, ``current`` rows already under the active key, ``failed``
        rows that no configured key decrypts (left unchanged and logged).
        """
        counts = {"reencrypted": 0, "current": 0, "failed": 0}
        for model, pk_name, column_name, aad_of in ENCRYPTED_COLUMNS:
            pk, column = getattr(model, pk_name), getattr(model, column_name)
            async with self._sessions.begin() as session:
                rows = (await session.execute(select(pk, column).where(column.is_not(None)))).all()
                for key, ciphertext in rows:
                    if not self._encryptor.needs_reencrypt(ciphertext):
                        counts["current"] += 1
                        continue
                    try:
                        plaintext = self._encryptor.decrypt(ciphertext, aad=aad_of(key))
                    except DecryptionError as error:
                        log.error("%s %s: cannot decrypt %s: %s", model.__tablename__, key, column_name, error)
                        counts["failed"] += 1
                        continue
                    fresh = self._encryptor.encrypt(plaintext, aad=aad_of(key))
                    result = await session.execute(
                        model.__table__.update().where(pk == key, column == ciphertext).values({column_name: fresh})
                    )
                    counts["reencrypted"] += int(getattr(result, "rowcount", 0) or 0)
        await self._record("keys.reencrypted", key_id=self._encryptor.active_key_id, **counts)
        return counts

    async def _record(self, event: str, **details: Any) -> None:
        if self._events is not None:
            await self._events.record(event, "success", **details)


async def _lock(session: AsyncSession) -> None:
    """Serialise key changes across instances (PostgreSQL); SQLite deployments are a single process."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"SELECT pg_advisory_xact_lock({KEYS_LOCK_ID})"))


@contextlib.asynccontextmanager
async def background_rotation(manager: KeyManager) -> Any:
    """Run :meth:`KeyManager.run_forever` for the lifetime of the application."""
    task = asyncio.create_task(manager.run_forever(), name="authserver-key-rotation")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
