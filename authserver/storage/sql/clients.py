"""Client registry: SQL rows, read through a short in-process cache (the token endpoint's hot path).

A change made here is seen by this instance at once and by other instances within ``cache_ttl``
seconds (documented in docs/architecture.md).
"""

from __future__ import annotations

import builtins
import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.clock import Clock
from authserver.protocol.scopes import unique
from authserver.storage.errors import Conflict, NotFound
from authserver.storage.sql.models import Client, ClientSecret
from authserver.tokens.opaque import CLIENT_SECRET_PREFIX, digest, new_id, new_secret

CLIENT_TYPES = ("confidential", "public")
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "none")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
# Unreserved characters only (RFC 3986 §2.3): the id reads the same whether or not a client form-urlencodes
# its Basic credentials (RFC 6749 §2.3.1; Authlib, for one, does not), and it is safe in URLs and logs.
CLIENT_ID = re.compile(r"[A-Za-z0-9._~-]{1,64}")
# Algorithms the key store always holds a key for (authserver.keys.keystore.SUPPORTED_ALGS).
SIGNING_ALGS = ("ES256", "RS256", "EdDSA")


@dataclass(frozen=True)
class SecretInfo:
    secret_digest: str
    expires_at: datetime | None


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

    @property
    def is_public(self) -> bool:
        return self.client_type == "public"

    def check_secret(self, secret: str, now: datetime) -> bool:
        """Constant-time check against every secret still valid (several during a rotation)."""
        presented = digest(secret)
        ok = False
        for info in self.secrets:
            if info.expires_at is not None and info.expires_at <= now:
                continue
            ok |= hmac.compare_digest(presented, info.secret_digest)
        return ok

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
            "signing_alg": self.signing_alg,
            "access_token_ttl": self.access_token_ttl,
            "refresh_token_idle_ttl": self.refresh_token_idle_ttl,
            "refresh_token_absolute_ttl": self.refresh_token_absolute_ttl,
            "disabled": self.disabled,
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
        secrets=tuple(SecretInfo(s.secret_digest, s.expires_at) for s in secrets),
    )


class SqlClientStore:
    # Reloads past the cache per second per instance after a secret mismatch (see ``refresh``).
    REFRESH_BUDGET = 20

    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock, *, cache_ttl: float = 10.0) -> None:
        self._sessions = sessions
        self._clock = clock
        self._cache_ttl = cache_ttl
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
            secrets = (await session.scalars(select(ClientSecret).where(ClientSecret.client_id == client_id))).all()
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
        redirect_uris: builtins.list[str],
        grant_types: builtins.list[str],
        scopes: builtins.list[str],
        audience: builtins.list[str] | None = None,
        client_id: str | None = None,
        token_endpoint_auth_method: str | None = None,
        post_logout_redirect_uris: builtins.list[str] | None = None,
        first_party: bool = False,
        require_mfa: bool = False,
        can_introspect: bool = False,
        signing_alg: str | None = None,
        access_token_ttl: int | None = None,
        refresh_token_idle_ttl: int | None = None,
        refresh_token_absolute_ttl: int | None = None,
    ) -> tuple[ClientInfo, str | None]:
        """Create a client; returns it with its secret in clear (shown once), or None for public clients."""
        if client_id is not None and not CLIENT_ID.fullmatch(client_id):
            raise ValueError("client_id: 1-64 characters of A-Z a-z 0-9 . _ ~ -")
        if client_type not in CLIENT_TYPES:
            raise ValueError(f"client type must be one of {CLIENT_TYPES}")
        method = token_endpoint_auth_method or ("none" if client_type == "public" else "client_secret_basic")
        if method not in AUTH_METHODS or (method == "none") != (client_type == "public"):
            raise ValueError("public clients use 'none'; confidential clients a client_secret_* method")
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
            created_at=now,
            updated_at=now,
        )
        secret = new_secret(CLIENT_SECRET_PREFIX) if client_type == "confidential" else None
        secret_rows = [ClientSecret(client_id=row.client_id, secret_digest=digest(secret), created_at=now)] if secret else []
        try:
            async with self._sessions.begin() as session:
                session.add(row)
                await session.flush()
                session.add_all(secret_rows)
        except IntegrityError:
            raise Conflict(f"client {row.client_id} exists") from None
        self.forget(row.client_id)
        return _info(row, secret_rows), secret

    async def rotate_secret(self, client_id: str, *, grace_seconds: int) -> str:
        """A new secret valid now; the current ones stay valid for ``grace_seconds`` more."""
        now = self._clock.now()
        secret = new_secret(CLIENT_SECRET_PREFIX)
        async with self._sessions.begin() as session:
            row = await session.get(Client, client_id)
            if row is None or row.client_type != "confidential":
                raise NotFound(client_id)
            await session.execute(
                update(ClientSecret)
                .where(ClientSecret.client_id == client_id, ClientSecret.expires_at.is_(None))
                .values(expires_at=now + timedelta(seconds=grace_seconds))
            )
            session.add(ClientSecret(client_id=client_id, secret_digest=digest(secret), created_at=now))
        self.forget(client_id)
        return secret

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
