"""SQLAlchemy 2 models: the durable, authoritative state (PostgreSQL or SQLite).

Secrets are never stored as given: client secrets, codes and refresh tokens as SHA-256 digests
(they are ≥256-bit random values), passwords as argon2id hashes, backup codes as salted SHA-256 digests
(random codes: see mfa/backup_codes.py), TOTP secrets and private keys AES-GCM encrypted.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    false,
    TypeDecorator,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every dialect (SQLite keeps no zone; we store naive UTC and re-attach it)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    metadata = metadata
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[str]: JSON()}


class Client(Base):
    __tablename__ = "clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # confidential (has secrets) or public (PKCE only, token_endpoint_auth_method "none")
    client_type: Mapped[str] = mapped_column(String(16))
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    redirect_uris: Mapped[list[str]] = mapped_column(default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(default=list)
    grant_types: Mapped[list[str]] = mapped_column(default=list)
    scopes: Mapped[list[str]] = mapped_column(default=list)
    # Default `aud` of access tokens when the request names no `resource`; also the allowed resources.
    audience: Mapped[list[str]] = mapped_column(default=list)
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    require_mfa: Mapped[bool] = mapped_column(Boolean, default=False)
    can_introspect: Mapped[bool] = mapped_column(Boolean, default=False)
    signing_alg: Mapped[str | None] = mapped_column(String(16), default=None)
    access_token_ttl: Mapped[int | None] = mapped_column(Integer, default=None)
    refresh_token_idle_ttl: Mapped[int | None] = mapped_column(Integer, default=None)
    refresh_token_absolute_ttl: Mapped[int | None] = mapped_column(Integer, default=None)
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer, default=None)
    # Sender-constrained and high-assurance clients (issue 13). The client's public keys, given inline (a JWK
    # Set, RFC 7591 `jwks`) or by URL (`jwks_uri`), for private_key_jwt (RFC 7523) and self_signed_tls_client_auth.
    jwks: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    jwks_uri: Mapped[str | None] = mapped_column(String(2000), default=None)
    # The JWS algorithm the client signs its assertions with (RFC 7591 token_endpoint_auth_signing_alg).
    token_endpoint_auth_signing_alg: Mapped[str | None] = mapped_column(String(16), default=None)
    # tls_client_auth (RFC 8705 §2.1.2): exactly one of these names the certificate the client presents.
    tls_client_auth_subject_dn: Mapped[str | None] = mapped_column(String(1000), default=None)
    tls_client_auth_san_dns: Mapped[str | None] = mapped_column(String(1000), default=None)
    tls_client_auth_san_uri: Mapped[str | None] = mapped_column(String(1000), default=None)
    tls_client_auth_san_ip: Mapped[str | None] = mapped_column(String(1000), default=None)
    tls_client_auth_san_email: Mapped[str | None] = mapped_column(String(1000), default=None)
    # Access tokens bound to the client's certificate (RFC 8705 §3, cnf.x5t#S256) or to a DPoP key (RFC 9449).
    tls_client_certificate_bound_access_tokens: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    dpop_bound_access_tokens: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # RFC 9126 §6: this client must push its authorization requests to /par.
    require_pushed_authorization_requests: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)
    # Who is told when the secret rotates by itself (authserver/secret_rotation.py): an address (never sent
    # the secret) and an https webhook that receives the new secret in a signed POST. The webhook's HMAC key
    # is encrypted with the Encryptor (the server signs with it, so it must read it back).
    owner_email: Mapped[str | None] = mapped_column(String(320), default=None)
    notification_webhook: Mapped[str | None] = mapped_column(String(2000), default=None)
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text, default=None)


class ClientSecret(Base):
    __tablename__ = "client_secrets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"), index=True)
    secret_digest: Mapped[str] = mapped_column(String(64))
    # client_secret_jwt clients only: the secret itself, Encryptor-encrypted (the HMAC key must be read back).
    secret_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]
    # None: valid until rotated. Set on rotation to the end of the grace period.
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # A client may hold several named secrets (one per deployment, say); rotation replaces a label's secrets.
    label: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # Set when a successor was issued (by hand or by the rotation job): the job does not rotate it again.
    rotated_at: Mapped[datetime | None] = mapped_column(default=None)
    # The secret this one replaces (automatic rotation: its grace starts when this one reaches the owner).
    replaces_id: Mapped[int | None] = mapped_column(Integer, default=None)
    # Automatic rotation only: the new secret, encrypted, until it is delivered (webhook) or revealed once.
    pending_secret_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    # Usage, counted in memory per instance and added here in batches (storage/sql/clients.SecretUsage).
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    use_count: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class Account(Base):
    __tablename__ = "accounts"

    # The OIDC `sub`: random, never reassigned.
    account_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(150), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str | None] = mapped_column(String(200), default=None)
    locale: Mapped[str | None] = mapped_column(String(16), default=None)
    password_hash: Mapped[str | None] = mapped_column(String(255), default=None)
    roles: Mapped[list[str]] = mapped_column(default=list)
    totp_secret_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(default=None)
    # Last accepted TOTP time step: a code of this step or earlier is refused (replay).
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Wrong second-factor codes in the current window, when that window began, and the lock verdict:
    # kept here (not in Redis) so a cache outage or flush never reopens guessing (SPEC ).
    mfa_failed_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    mfa_failures_since: Mapped[datetime | None] = mapped_column(default=None)
    mfa_locked_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)


class BackupCode(Base):
    __tablename__ = "backup_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class BrowserSession(Base):
    __tablename__ = "browser_sessions"

    # SHA-256 of the opaque cookie value.
    session_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id", ondelete="CASCADE"), index=True)
    auth_time: Mapped[datetime]
    amr: Mapped[list[str]] = mapped_column(default=list)
    acr: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(300), default=None)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)


class Consent(Base):
    __tablename__ = "consents"

    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id", ondelete="CASCADE"), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"), primary_key=True)
    scopes: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AccountToken(Base):
    """A single-use link sent by mail: ``reset`` (password reset) or ``verify`` (e-mail verification of
    ``email``). Only the SHA-256 digest of the value is stored, like every other opaque token."""

    __tablename__ = "account_tokens"

    token_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    # The address a ``verify`` link proves; None for ``reset``.
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    used_at: Mapped[datetime | None] = mapped_column(default=None)


class Invitation(Base):
    """An invitation code for sign-up (``self_service.signup_requires_invitation``), made by an operator.
    Only the SHA-256 digest of the code is stored; ``invitation_id`` names it in listings and revocation.
    Each use is claimed with one conditional ``UPDATE … SET uses = uses + 1 WHERE uses < max_uses``."""

    __tablename__ = "invitations"

    invitation_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    code_digest: Mapped[str] = mapped_column(String(64), unique=True)
    max_uses: Mapped[int] = mapped_column(Integer, default=1)
    uses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    note: Mapped[str | None] = mapped_column(String(200), default=None)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Grant(Base):
    """One authorization: the family of every token issued from one code (or one client-credentials call)."""

    __tablename__ = "grants"

    grant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"), index=True)
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.account_id", ondelete="CASCADE"), index=True, default=None)
    session_digest: Mapped[str | None] = mapped_column(String(64), index=True, default=None)
    scopes: Mapped[list[str]] = mapped_column(default=list)
    audience: Mapped[list[str]] = mapped_column(default=list)
    auth_time: Mapped[datetime | None] = mapped_column(default=None)
    amr: Mapped[list[str]] = mapped_column(default=list)
    acr: Mapped[str | None] = mapped_column(String(64), default=None)
    nonce: Mapped[str | None] = mapped_column(String(512), default=None)
    created_at: Mapped[datetime]
    # Absolute end of the family's refresh tokens.
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    # RFC 9449 §5: the DPoP key (RFC 7638 thumbprint) a public client's refresh tokens are bound to.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64), default=None)


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"

    code_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(ForeignKey("clients.client_id", ondelete="CASCADE"))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.account_id", ondelete="CASCADE"), index=True)
    session_digest: Mapped[str | None] = mapped_column(String(64), default=None)
    redirect_uri: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(default=list)
    audience: Mapped[list[str]] = mapped_column(default=list)
    code_challenge: Mapped[str] = mapped_column(String(128))
    nonce: Mapped[str | None] = mapped_column(String(512), default=None)
    auth_time: Mapped[datetime]
    amr: Mapped[list[str]] = mapped_column(default=list)
    acr: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    consumed_at: Mapped[datetime | None] = mapped_column(default=None)
    # RFC 9449 §10: the DPoP key the code was bound to at /authorize (dpop_jkt); the token request's proof must match.
    dpop_jkt: Mapped[str | None] = mapped_column(String(64), default=None)
    # The grant created when the code was redeemed: revoked if the code is presented again.
    grant_id: Mapped[str | None] = mapped_column(String(64), default=None)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"

    token_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    grant_id: Mapped[str] = mapped_column(ForeignKey("grants.grant_id", ondelete="CASCADE"), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime]
    # Idle expiry (the absolute one is on the grant).
    expires_at: Mapped[datetime] = mapped_column(index=True)
    consumed_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class DenyListEntry(Base):
    """Durable copy of the revocation deny list (the cache holds the hot copy; see tokens/revocation.py).

    ``entry`` is ``jti:<jti>`` (one access token), ``gid:<grant id>`` (every access token of a family) or
    ``acct:<account id>`` (every access token of a person issued before ``not_before``; "inf": all).
    """

    __tablename__ = "deny_list"

    entry: Mapped[str] = mapped_column(String(160), primary_key=True)
    not_before: Mapped[str] = mapped_column(String(32), default="inf")
    created_at: Mapped[datetime]
    # When every token the entry can match has expired: the entry may then be purged.
    expires_at: Mapped[datetime] = mapped_column(index=True)


class SigningKey(Base):
    __tablename__ = "signing_keys"

    # RFC 7638 thumbprint.
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    # next → active → retired → (deleted); revoked on emergency.
    state: Mapped[str] = mapped_column(String(16), index=True)
    public_jwk: Mapped[dict[str, Any]]
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    activated_at: Mapped[datetime | None] = mapped_column(default=None)
    retired_at: Mapped[datetime | None] = mapped_column(default=None)
    # When the key may leave the JWKS: every token it signed has expired (plus leeway).
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class SecurityEvent(Base):
    __tablename__ = "security_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(index=True)
    event: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(16))
    client_id: Mapped[str | None] = mapped_column(String(64), default=None)
    account_id: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    user_agent: Mapped[str | None] = mapped_column(String(300), default=None)
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)

    __table_args__ = (
        # The retention purge finds the events that still carry an IP or user agent through this (small) index.
        Index(
            "ix_security_events_personal_data", "occurred_at",
            postgresql_where=text("ip IS NOT NULL OR user_agent IS NOT NULL"),
            sqlite_where=text("ip IS NOT NULL OR user_agent IS NOT NULL"),
        ),
    )


class LoginThrottle(Base):
    """Failure counters and lock verdicts (brute-force protection), shared by every instance and durable.

    ``key`` names what is counted: ``acct:<sha256 of the username>``, ``ip:<address>``,
    ``client:<client id>|<address>``, ``cip:<address>``.
    """

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime]
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    # Locks so far; each one lasts twice as long as the one before (up to a maximum).
    lock_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(index=True)


class ServerFlag(Base):
    """Operator switches shared by every instance (e.g. ``emergency``)."""

    __tablename__ = "server_flags"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[datetime]


class JobLease(Base):
    """One row per background job (authserver.jobs): when it is next due and who holds it while it runs."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The instance running it now or last (host:pid:random).
    holder: Mapped[str | None] = mapped_column(String(100), default=None)
    # While set and in the future, nobody else may start the job (the holder crashed: it ends by itself).
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    next_run_at: Mapped[datetime]
    last_run_at: Mapped[datetime | None] = mapped_column(default=None)
