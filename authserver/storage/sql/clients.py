"""Client registry: SQL rows, read through a short in-process cache (the token endpoint's hot path).

A change made here is seen by this instance at once and by other instances within ``cache_ttl``
seconds (documented in docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.clock import Clock
from authserver.keys.encryption import Encryptor
from authserver.protocol.scopes import unique
from authserver.storage.errors import Conflict, NotFound
from authserver.storage.sql.models import Client, ClientSecret
from authserver.tokens.opaque import CLIENT_SECRET_PREFIX, digest, new_id, new_secret

log = logging.getLogger("authserver.clients")


def pending_aad(secret_id: int) -> bytes:
    """Associated data of an undelivered secret's ciphertext: bound to its row."""
    return f"client_secret:{secret_id}".encode()


def webhook_aad(client_id: str) -> bytes:
    """Associated data of a client's webhook signing key: bound to the client."""
    return f"webhook_secret:{client_id}".encode()


CLIENT_TYPES = ("confidential", "public")
DEFAULT_LABEL = "default"
AUTH_METHODS = (
    "client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "tls_client_auth",
    "self_signed_tls_client_auth", "none",
)
# RFC 8705 §2: the client authenticates with its TLS certificate and has no secret.
CERTIFICATE_AUTH_METHODS = ("tls_client_auth", "self_signed_tls_client_auth")
# Methods that authenticate with a secret we issue (client_secret_jwt keeps it encrypted to verify HMACs).
SECRET_METHODS = ("client_secret_basic", "client_secret_post", "client_secret_jwt")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
# Unreserved characters only (RFC 3986 §2.3): the id reads the same whether or not a client form-urlencodes
# its Basic credentials (RFC 6749 §2.3.1; Authlib, for one, does not), and it is safe in URLs and logs.
CLIENT_ID = re.compile(r"[A-Za-z0-9._~-]{1,64}")
# Algorithms the key store always holds a key for (authserver.keys.keystore.SUPPORTED_ALGS).
SIGNING_ALGS = ("ES256", "RS256", "EdDSA")
# Client metadata of sender-constrained and high-assurance clients (issue 13): same name on the row, the
# ClientInfo, the admin API and RFC 7591 registration.
SENDER_CONSTRAINT_FIELDS = (
    "jwks",
    "jwks_uri",
    "token_endpoint_auth_signing_alg",
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
    "tls_client_certificate_bound_access_tokens",
    "dpop_bound_access_tokens",
    "require_pushed_authorization_requests",
)
# Mutual-TLS metadata (RFC 8705 §2.1.2, §3.4) shown in client views (admin API, registration responses).
MTLS_FIELDS = (
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
    "tls_client_certificate_bound_access_tokens",
)


@dataclass(frozen=True)
class SecretInfo:
    secret_digest: str
    expires_at: datetime | None
    # The row's id (usage counting); 0 for a view made before the row had one.
    id: int = 0
    # client_secret_jwt: the secret encrypted with the Encryptor (aad: ``secret_aad``).
    secret_encrypted: str | None = field(default=None, repr=False)


def secret_aad(client_id: str) -> bytes:
    """Binds an encrypted client secret to its client: copied onto another client's row, it does not decrypt."""
    return f"client_secret:{client_id}".encode()


@dataclass(frozen=True)
class ClientInfo:
    """An immutable view of a client, safe to cache and share between requests."""

    client_id: str
    name: str
    client_type: str
    token_endpoint_auth_method: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    audience: tuple[str, ...]
    first_party: bool
    require_mfa: bool
    can_introspect: bool
    signing_alg: str | None
    access_token_ttl: int | None
    refresh_token_idle_ttl: int | None
    refresh_token_absolute_ttl: int | None
    rate_limit_per_minute: int | None
    disabled: bool
    secrets: tuple[SecretInfo, ...] = field(repr=False, default=())
    # Issue 13 metadata (models.Client documents each).
    jwks: dict[str, Any] | None = field(default=None, repr=False)
    jwks_uri: str | None = None
    token_endpoint_auth_signing_alg: str | None = None
    tls_client_auth_subject_dn: str | None = None
    tls_client_auth_san_dns: str | None = None
    tls_client_auth_san_uri: str | None = None
    tls_client_auth_san_ip: str | None = None
    tls_client_auth_san_email: str | None = None
    tls_client_certificate_bound_access_tokens: bool = False
    dpop_bound_access_tokens: bool = False
    require_pushed_authorization_requests: bool = False
    owner_email: str | None = None
    notification_webhook: str | None = None

    @property
    def is_public(self) -> bool:
        return self.client_type == "public"

    def check_secret(self, secret: str, now: datetime) -> bool:
        """Constant-time check against every secret still valid (several during a rotation)."""
        return self.match_secret(secret, now) is not None

    def match_secret(self, secret: str, now: datetime) -> SecretInfo | None:
        """The valid secret that matches, compared in constant time against each (None: no match)."""
        presented = digest(secret)
        found: SecretInfo | None = None
        for info in self.secrets:
            if info.expires_at is not None and info.expires_at <= now:
                continue
            if hmac.compare_digest(presented, info.secret_digest):
                found = info
        return found

    def secret_expires_at(self, now: datetime) -> int | None:
        """RFC 7591 §3.2.1 ``client_secret_expires_at``: when the last valid secret expires (seconds since the
        epoch), 0 if one never expires, None for a public client (or one whose secrets have all ended)."""
        live = [s.expires_at for s in self.secrets if s.expires_at is None or s.expires_at > now]
        if self.is_public or not live:
            return None
        if any(e is None for e in live):
            return 0
        return int(max(e for e in live if e is not None).timestamp())

    def public_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "name": self.name,
            "client_type": self.client_type,
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "grant_types": list(self.grant_types),
            "scopes": list(self.scopes),
            "audience": list(self.audience),
            "first_party": self.first_party,
            "require_mfa": self.require_mfa,
            "can_introspect": self.can_introspect,
            "dpop_bound_access_tokens": self.dpop_bound_access_tokens,
            "signing_alg": self.signing_alg,
            "access_token_ttl": self.access_token_ttl,
            "refresh_token_idle_ttl": self.refresh_token_idle_ttl,
            "refresh_token_absolute_ttl": self.refresh_token_absolute_ttl,
            "disabled": self.disabled,
            "owner_email": self.owner_email,
            "notification_webhook": self.notification_webhook,
            **{name: getattr(self, name) for name in MTLS_FIELDS},
            "jwks": self.jwks,
        }


def _info(row: Client, secrets: list[ClientSecret]) -> ClientInfo:
    return ClientInfo(
        client_id=row.client_id,
        name=row.name,
        client_type=row.client_type,
        token_endpoint_auth_method=row.token_endpoint_auth_method,
        redirect_uris=tuple(row.redirect_uris),
        post_logout_redirect_uris=tuple(row.post_logout_redirect_uris),
        grant_types=tuple(row.grant_types),
        scopes=tuple(row.scopes),
        audience=tuple(row.audience),
        first_party=row.first_party,
        require_mfa=row.require_mfa,
        can_introspect=row.can_introspect,
        signing_alg=row.signing_alg,
        access_token_ttl=row.access_token_ttl,
        refresh_token_idle_ttl=row.refresh_token_idle_ttl,
        refresh_token_absolute_ttl=row.refresh_token_absolute_ttl,
        rate_limit_per_minute=row.rate_limit_per_minute,
        disabled=row.disabled_at is not None,
        secrets=tuple(
            SecretInfo(s.secret_digest, s.expires_at, id=s.id, secret_encrypted=s.secret_encrypted)
            for s in secrets if s.revoked_at is None
        ),
        owner_email=row.owner_email,
        notification_webhook=row.notification_webhook,
        **{name: getattr(row, name) for name in SENDER_CONSTRAINT_FIELDS},
    )


class SecretUsage:
    """When and how often each client secret is used, without a write per token request.

    The token endpoint calls :meth:`record` (a dict update, no await). A background flush adds the counts to
    ``client_secrets`` at most ``flush_delay`` seconds after the first use it has not written yet, one
    ``UPDATE … SET use_count = use_count + n, last_used_at = max(last_used_at, t)`` per secret, all in one
    executemany: several instances flushing at once add up instead of overwriting each other. A failed write
    keeps the counts for the next flush; reads (admin API, CLI) flush this instance first.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, *, flush_delay: float = 10.0) -> None:
        self._sessions = sessions
        self._clock = clock
        self._flush_delay = flush_delay
        # secret id -> [uses, last use]
        self._counts: dict[int, list[Any]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._writing: asyncio.Lock | None = None
        self._closing = False

    @property
    def pending(self) -> dict[int, int]:
        return {secret_id: entry[0] for secret_id, entry in self._counts.items()}

    def record(self, secret_id: int) -> None:
        if not secret_id:
            return
        entry = self._counts.get(secret_id)
        if entry is None:
            self._counts[secret_id] = [1, self._clock.now()]
        else:
            entry[0] += 1
            entry[1] = self._clock.now()
        if self._flusher is None and not self._closing:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self._flush_delay)
            await self.flush()
        finally:
            self._flusher = None
        if self._counts and not self._closing:  # the write failed (or new uses came meanwhile): again later
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def flush(self) -> bool:
        """Add every pending count now; False (counts kept) if the database refused them."""
        if self._writing is None:
            self._writing = asyncio.Lock()
        async with self._writing:
            if not self._counts:
                return True
            batch, self._counts = self._counts, {}
            used_at = bindparam("b_t", type_=ClientSecret.last_used_at.type)
            statement = (
                update(ClientSecret)
                .where(ClientSecret.id == bindparam("b_id"))
                .values(
                    use_count=ClientSecret.use_count + bindparam("b_n"),
                    last_used_at=case(
                        (or_(ClientSecret.last_used_at.is_(None), ClientSecret.last_used_at < used_at), used_at),
                        else_=ClientSecret.last_used_at,
                    ),
                )
            )
            # In id order: two instances flushing overlapping sets lock the rows in the same order (no deadlock).
            rows = [{"b_id": secret_id, "b_n": n, "b_t": t} for secret_id, (n, t) in sorted(batch.items())]
            try:
                async with self._sessions.begin() as session:
                    connection = await session.connection()
                    await connection.execute(statement, rows)
            except Exception:
                log.exception("could not store the usage of %d client secrets; kept for a retry", len(batch))
                for secret_id, (n, t) in batch.items():  # merge back with what came meanwhile
                    entry = self._counts.setdefault(secret_id, [0, t])
                    entry[0] += n
                    entry[1] = max(entry[1], t)
                return False
        return True

    async def close(self) -> None:
        """Write what is pending and stop the background flush (shutdown)."""
        self._closing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), 3.0)
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher


class SqlClientStore:
    # Reloads past the cache per second per instance after a secret mismatch (see ``refresh``).
    REFRESH_BUDGET = 20

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        cache_ttl: float = 10.0,
        secret_lifetime: int = 0,
        usage_flush_delay: float = 10.0,
        encryptor: Encryptor | None = None,
    ) -> None:
        self._sessions = sessions
        # Encrypts the secrets of client_secret_jwt clients (their HMAC key); without it such clients cannot be made.
        self._encryptor = encryptor
        self._clock = clock
        self._cache_ttl = cache_ttl
        # Seconds a new secret is valid (0: until rotated); settings.client_secrets.lifetime.
        self.secret_lifetime = secret_lifetime
        self.usage = SecretUsage(sessions, clock, flush_delay=usage_flush_delay)
        self._cache: dict[str, tuple[float, ClientInfo | None]] = {}
        self._refresh_second = 0
        self._refresh_count = 0
        # Bumped on every change this instance makes (``forget``).
        self.changes = 0

    async def get(self, client_id: str) -> ClientInfo | None:
        """The client, or None if unknown. Cached for ``cache_ttl`` seconds (negative answers too)."""
        hit = self._cache.get(client_id)
        if hit is not None and hit[0] > self._clock.monotonic():
            return hit[1]
        info = await self._load(client_id)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[client_id] = (self._clock.monotonic() + self._cache_ttl, info)
        return info

    async def refresh(self, client_id: str) -> ClientInfo | None:
        """Reload past the cache: used when a presented secret does not match the cached client.

        Another instance may have rotated the secret moments ago, and the new secret must work at once
        everywhere. Forced reloads are capped at ``REFRESH_BUDGET`` per second per instance so a wave of
        wrong secrets cannot turn into a wave of database reads; past the cap the cached view answers.
        """
        second = int(self._clock.monotonic())
        if second != self._refresh_second:
            self._refresh_second, self._refresh_count = second, 0
        if self._refresh_count >= self.REFRESH_BUDGET:
            return await self.get(client_id)
        self._refresh_count += 1
        self._cache.pop(client_id, None)
        return await self.get(client_id)

    def forget(self, client_id: str) -> None:
        """After a change to the client: drop the cached copy; ``changes`` tells in-process views (CORS origins) to reload."""
        self._cache.pop(client_id, None)
        self.changes += 1

    async def _load(self, client_id: str) -> ClientInfo | None:
        if not client_id or len(client_id) > 64:
            return None
        async with self._sessions() as session:
            row = await session.get(Client, client_id)
            if row is None:
                return None
            secrets = (await session.scalars(
                select(ClientSecret).where(ClientSecret.client_id == client_id, ClientSecret.revoked_at.is_(None))
            )).all()
            return _info(row, list(secrets))

    async def public_redirect_uris(self) -> list[str]:
        """The redirect URIs of every enabled public client (the CORS origins derive from them)."""
        async with self._sessions() as session:
            rows = await session.execute(
                select(Client.redirect_uris).where(Client.client_type == "public", Client.disabled_at.is_(None))
            )
            return [uri for (uris,) in rows.all() for uri in (uris or [])]

    async def list(self) -> list[ClientInfo]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(Client).order_by(Client.created_at))).all()
            secrets = (await session.scalars(select(ClientSecret))).all()
        by_client: dict[str, list[ClientSecret]] = {}
        for s in secrets:
            by_client.setdefault(s.client_id, []).append(s)
        return [_info(r, by_client.get(r.client_id, [])) for r in rows]

    async def create(
        self,
        *,
        name: str,
        client_type: str,
        redirect_uris: list[str],
        grant_types: list[str],
        scopes: list[str],
        audience: list[str] | None = None,
        client_id: str | None = None,
        token_endpoint_auth_method: str | None = None,
        post_logout_redirect_uris: list[str] | None = None,
        first_party: bool = False,
        require_mfa: bool = False,
        can_introspect: bool = False,
        signing_alg: str | None = None,
        access_token_ttl: int | None = None,
        refresh_token_idle_ttl: int | None = None,
        refresh_token_absolute_ttl: int | None = None,
        **sender_constraints: Any,
    ) -> tuple[ClientInfo, str | None]:
        """Create a client; returns it with its secret in clear (shown once), or None for public clients.

        ``sender_constraints`` takes the SENDER_CONSTRAINT_FIELDS (validated by the caller, admin/validation.py).
        """
        unknown_fields = set(sender_constraints) - set(SENDER_CONSTRAINT_FIELDS)
        if unknown_fields:
            raise ValueError(f"unknown client field(s): {sorted(unknown_fields)}")
        if client_id is not None and not CLIENT_ID.fullmatch(client_id):
            raise ValueError("client_id: 1-64 characters of A-Z a-z 0-9 . _ ~ -")
        if client_type not in CLIENT_TYPES:
            raise ValueError(f"client type must be one of {CLIENT_TYPES}")
        method = token_endpoint_auth_method or ("none" if client_type == "public" else "client_secret_basic")
        if method not in AUTH_METHODS or (method == "none") != (client_type == "public"):
            raise ValueError(f"public clients use 'none'; confidential clients one of {', '.join(AUTH_METHODS[:-1])}")
        if method == "private_key_jwt" and not (sender_constraints.get("jwks") or sender_constraints.get("jwks_uri")):
            raise ValueError("private_key_jwt needs jwks or jwks_uri")
        if sender_constraints.get("jwks") and sender_constraints.get("jwks_uri"):
            raise ValueError("jwks and jwks_uri are exclusive")
        unknown = set(grant_types) - set(GRANT_TYPES)
        if unknown:
            raise ValueError(f"unknown grant type(s): {sorted(unknown)}")
        if client_type == "public" and "client_credentials" in grant_types:
            raise ValueError("client_credentials is for confidential clients only")
        if signing_alg is not None and signing_alg not in SIGNING_ALGS:
            raise ValueError(f"signing_alg must be one of {SIGNING_ALGS}")
        if "authorization_code" in grant_types and not redirect_uris:
            raise ValueError("authorization_code needs at least one redirect URI")
        now = self._clock.now()
        row = Client(
            client_id=client_id or new_id(16),
            name=name,
            client_type=client_type,
            token_endpoint_auth_method=method,
            redirect_uris=unique(redirect_uris),
            post_logout_redirect_uris=unique(post_logout_redirect_uris or []),
            grant_types=unique(grant_types),
            scopes=unique(scopes),
            audience=unique(audience or []),
            first_party=first_party,
            require_mfa=require_mfa,
            can_introspect=can_introspect,
            signing_alg=signing_alg,
            access_token_ttl=access_token_ttl,
            refresh_token_idle_ttl=refresh_token_idle_ttl,
            refresh_token_absolute_ttl=refresh_token_absolute_ttl,
            **{name: value for name, value in sender_constraints.items() if value is not None},
            created_at=now,
            updated_at=now,
        )
        secret = new_secret(CLIENT_SECRET_PREFIX) if method in SECRET_METHODS else None
        secret_rows = [self._secret_row(row.client_id, method, secret, now, label=DEFAULT_LABEL)] if secret else []
        try:
            async with self._sessions.begin() as session:
                session.add(row)
                await session.flush()
                session.add_all(secret_rows)
        except IntegrityError:
            raise Conflict(f"client {row.client_id} exists") from None
        self.forget(row.client_id)
        return _info(row, secret_rows), secret

    def _expiry(self, now: datetime) -> datetime | None:
        return now + timedelta(seconds=self.secret_lifetime) if self.secret_lifetime else None

    def _secret_row(self, client_id: str, method: str, secret: str, now: datetime, *, label: str) -> ClientSecret:
        """A new secret's row: its digest, expiry and label, and for client_secret_jwt an encrypted copy (the
        HMAC key must be read back)."""
        encrypted = None
        if method == "client_secret_jwt":
            if self._encryptor is None:
                raise ValueError("client_secret_jwt needs the store's encryptor")
            encrypted = self._encryptor.encrypt(secret.encode(), aad=secret_aad(client_id))
        return ClientSecret(
            client_id=client_id, secret_digest=digest(secret), secret_encrypted=encrypted, created_at=now,
            expires_at=self._expiry(now), label=label, use_count=0,
        )

    async def rotate_secret(self, client_id: str, *, grace_seconds: int, label: str | None = None) -> str:
        """A new secret valid now; the current ones stay valid for ``grace_seconds`` more (at most their own
        expiry). ``label`` None replaces every secret of the client (the new one is labelled ``default``);
        a label replaces only that label's secrets, or adds the label if the client has none yet."""
        secret, _ = await self.add_secret(client_id, label=label, grace_seconds=grace_seconds)
        return secret

    async def add_secret(self, client_id: str, *, label: str | None, grace_seconds: int) -> tuple[str, ClientSecret]:
        now = self._clock.now()
        secret = new_secret(CLIENT_SECRET_PREFIX)
        end = now + timedelta(seconds=grace_seconds)
        async with self._sessions.begin() as session:
            row = await session.get(Client, client_id)
            if row is None or row.token_endpoint_auth_method not in SECRET_METHODS:
                raise NotFound(client_id)
            replaced = [
                ClientSecret.client_id == client_id, ClientSecret.revoked_at.is_(None),
                or_(ClientSecret.expires_at.is_(None), ClientSecret.expires_at > end),
            ]
            if label is not None:
                replaced.append(ClientSecret.label == label)
            await session.execute(update(ClientSecret).where(*replaced).values(expires_at=end))
            current = [ClientSecret.client_id == client_id, ClientSecret.rotated_at.is_(None)]
            if label is not None:
                current.append(ClientSecret.label == label)
            await session.execute(update(ClientSecret).where(*current).values(rotated_at=now))
            created = self._secret_row(client_id, row.token_endpoint_auth_method, secret, now, label=label or DEFAULT_LABEL)
            session.add(created)
        self.forget(client_id)
        return secret, created

    async def secrets(self, client_id: str) -> Sequence[ClientSecret]:
        """Every secret row of the client (revoked and expired ones too), oldest first; usage flushed first."""
        await self.usage.flush()
        async with self._sessions() as session:
            if await session.get(Client, client_id) is None:
                raise NotFound(client_id)
            rows = await session.scalars(select(ClientSecret).where(ClientSecret.client_id == client_id).order_by(ClientSecret.id))
            return rows.all()

    async def revoke_secret(self, client_id: str, secret_id: int) -> ClientSecret:
        """End one secret now (and forget an undelivered copy of it)."""
        now = self._clock.now()
        async with self._sessions.begin() as session:
            row = await session.get(ClientSecret, secret_id, with_for_update=True)
            if row is None or row.client_id != client_id:
                raise NotFound(str(secret_id))
            if row.revoked_at is None:
                row.revoked_at = now
                row.expires_at = now if row.expires_at is None or row.expires_at > now else row.expires_at
                row.pending_secret_encrypted = None
        self.forget(client_id)
        return row

    async def claim_pending(
        self, client_id: str, secret_id: int, *, unseal: Callable[[str, int], str]
    ) -> tuple[ClientSecret, str] | None:
        """Take the encrypted copy of an automatically rotated secret, erasing it (shown once). ``unseal``
        decrypts it before the erasure commits: a copy no key decrypts stays (and ``unseal`` raises)."""
        async with self._sessions.begin() as session:
            row = await session.get(ClientSecret, secret_id)
            if row is None or row.client_id != client_id or row.pending_secret_encrypted is None or row.revoked_at is not None:
                return None
            sealed = row.pending_secret_encrypted
            secret = unseal(sealed, row.id)
            taken = await session.execute(
                update(ClientSecret)
                .where(ClientSecret.id == secret_id, ClientSecret.pending_secret_encrypted == sealed)
                .values(pending_secret_encrypted=None)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]  # another call took it first
                return None
            session.expunge(row)
        return row, secret

    async def expiring(self, *, within: int) -> Sequence[ClientSecret]:
        """Live secrets of enabled confidential clients that expire within ``within`` seconds and have no
        successor yet (the rotation job's work list)."""
        now = self._clock.now()
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ClientSecret)
                .join(Client, Client.client_id == ClientSecret.client_id)
                .where(
                    Client.client_type == "confidential", Client.disabled_at.is_(None),
                    ClientSecret.revoked_at.is_(None), ClientSecret.rotated_at.is_(None),
                    ClientSecret.expires_at.is_not(None), ClientSecret.expires_at > now,
                    ClientSecret.expires_at <= now + timedelta(seconds=within),
                )
                .order_by(ClientSecret.id)
            )
            return rows.all()

    async def undelivered(self) -> Sequence[ClientSecret]:
        """Automatically issued secrets still waiting for their owner (valid, not revoked)."""
        now = self._clock.now()
        async with self._sessions() as session:
            rows = await session.scalars(
                select(ClientSecret).where(
                    ClientSecret.pending_secret_encrypted.is_not(None), ClientSecret.revoked_at.is_(None),
                    or_(ClientSecret.expires_at.is_(None), ClientSecret.expires_at > now),
                ).order_by(ClientSecret.id)
            )
            return rows.all()

    async def auto_rotate(self, secret_id: int, *, seal: Callable[[str, int], str]) -> tuple[str, ClientSecret] | None:
        """Issue the successor of ``secret_id`` under the same label, kept encrypted (``seal(secret, new id)``)
        until it reaches the owner. The old secret keeps its expiry until then (``start_grace``). None if
        another instance or an operator rotated it first (the claim is one conditional UPDATE)."""
        now = self._clock.now()
        secret = new_secret(CLIENT_SECRET_PREFIX)
        async with self._sessions.begin() as session:
            claimed = await session.execute(
                update(ClientSecret)
                .where(ClientSecret.id == secret_id, ClientSecret.rotated_at.is_(None), ClientSecret.revoked_at.is_(None))
                .values(rotated_at=now)
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            old = await session.get(ClientSecret, secret_id)
            assert old is not None
            client = await session.get(Client, old.client_id)
            method = client.token_endpoint_auth_method if client is not None else ""
            created = self._secret_row(old.client_id, method, secret, now, label=old.label)
            created.replaces_id = old.id
            session.add(created)
            await session.flush()
            created.pending_secret_encrypted = seal(secret, created.id)
        self.forget(created.client_id)
        return secret, created

    async def delivered(self, secret_id: int) -> None:
        """The pending copy reached the owner: erase it."""
        async with self._sessions.begin() as session:
            await session.execute(
                update(ClientSecret).where(ClientSecret.id == secret_id).values(pending_secret_encrypted=None)
            )

    async def start_grace(self, secret_id: int, *, grace_seconds: int) -> datetime | None:
        """The successor ``secret_id`` reached its owner: the secret it replaces ends after the grace (never later
        than its own expiry). Returns when the replaced secret now ends."""
        now = self._clock.now()
        end = now + timedelta(seconds=grace_seconds)
        async with self._sessions.begin() as session:
            row = await session.get(ClientSecret, secret_id)
            if row is None or row.replaces_id is None:
                return None
            old = await session.get(ClientSecret, row.replaces_id, with_for_update=True)
            if old is None or old.revoked_at is not None:
                return None
            if old.expires_at is None or old.expires_at > end:
                old.expires_at = end
            client_id, ends = old.client_id, old.expires_at
        self.forget(client_id)
        return ends

    async def set_disabled(self, client_id: str, disabled: bool) -> datetime | None:
        """Disable (keeping the first disabling time) or enable; returns when the client was disabled, if it was."""
        async with self._sessions.begin() as session:
            row = await session.get(Client, client_id, with_for_update=True)
            if row is None:
                raise NotFound(client_id)
            was_disabled = row.disabled_at
            now = self._clock.now()
            row.disabled_at = (was_disabled or now) if disabled else None
            row.updated_at = now
        self.forget(client_id)
        return was_disabled

    async def delete(self, client_id: str) -> None:
        async with self._sessions.begin() as session:
            result = await session.execute(delete(Client).where(Client.client_id == client_id))
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise NotFound(client_id)
        self.forget(client_id)
