"""Settings: one typed, documented home for every option.

Precedence: environment (``AUTHSERVER_<GROUP>__<FIELD>``) over a TOML file over the defaults below.
The TOML file is the ``path`` given to :func:`load_settings` (the CLI's ``--config``), else
``$AUTHSERVER_CONFIG``; with neither, only defaults and the environment apply.

Every field has a default and a comment; ``config/authserver.example.toml`` is rendered from these
dataclasses (``python -m authserver.settings``) and a test keeps it in sync.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import sys
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from authserver.protocol.scopes import is_scope_token, unique

ENV_PREFIX = "AUTHSERVER_"
PLACEHOLDER_MARKERS = ("changeme", "change-me", "changethis", "placeholder", "example")


class SettingsError(ValueError):
    """A setting is missing, malformed or unsafe; the message names it by its path."""


class Secret(str):
    """A string whose repr hides it, so it never lands in a log line or a traceback."""

    def __repr__(self) -> str:
        return "Secret('**********')"


@dataclass(frozen=True)
class ServerSettings:
    # Public issuer identifier: the URL prefix of every endpoint. Must be https in production.
    # Empty: http://<host>:<port> (the embedded default).
    issuer: str = ""
    # Address and port `authserver serve` binds to.
    host: str = "127.0.0.1"
    port: int = 8000
    # uvicorn worker processes. More than one requires a shared cache (Redis).
    workers: int = 1
    # Production mode: refuses placeholder secrets, http issuers and the in-process cache with workers > 1.
    production: bool = False
    # Session cookie `Secure` flag. Unset: Secure unless the issuer is plain http on a loopback host.
    cookie_secure: bool | None = None
    # Largest request body accepted, in bytes (413 above it).
    max_body_bytes: int = 64 * 1024
    # Create a demo client and user on first start (embedded default only; off in production).
    demo: bool = True
    # `authserver serve` terminates TLS itself (small deployments; behind a proxy leave these empty): the
    # server certificate chain and its private key, PEM files. With tls_certfile set the issuer defaults to https.
    tls_certfile: str = ""
    tls_keyfile: str = ""
    # CA certificates (PEM) that client certificates must chain to; set: clients may present a certificate
    # (mutual TLS, RFC 8705), which the handshake verifies. Empty: no client certificates are asked for.
    tls_client_ca_file: str = ""
    # Refuse TLS connections without a client certificate (off: optional, only mTLS clients present one).
    tls_client_cert_required: bool = False
    # Base URL of the endpoints when reached with mutual TLS (RFC 8705 §5 mtls_endpoint_aliases), when the
    # proxy serves mTLS on another host, e.g. https://mtls.auth.cmipro.example. Empty: the issuer's URLs.
    mtls_base_url: str = ""


@dataclass(frozen=True)
class DatabaseSettings:
    # SQLAlchemy URL. sqlite+aiosqlite:///path for the embedded default, postgresql+asyncpg://… otherwise.
    url: str = "sqlite+aiosqlite:///./authserver.db"
    # Connection pool size and overflow (PostgreSQL only).
    pool_size: int = 10
    max_overflow: int = 10
    # Seconds to wait for a pooled connection before answering 503.
    pool_timeout: float = 2.0
    # Server-side statement timeout in milliseconds (PostgreSQL only).
    statement_timeout_ms: int = 2000
    # Run migrations automatically at start-up (`authserver serve`).
    migrate_on_start: bool = True
    # Test a pooled connection before use when it has been idle longer than pool_ping_after seconds
    # (PostgreSQL; a connection used moments ago is known to be alive, as HikariCP's bypass window). Off:
    # a dead connection fails one request with 503, then the pool is renewed.
    pool_pre_ping: bool = True
    # Seconds of idleness after which a pooled connection is tested before use (0: test every checkout).
    pool_ping_after: float = 1.0


@dataclass(frozen=True)
class CacheSettings:
    # Shared short-lived state (interactions, rate windows, replay guards). memory:// or redis://host:port/db.
    url: str = "memory://"
    # Prefix for every Redis key, so several deployments can share one Redis.
    key_prefix: str = "authserver:"
    # Socket timeout for Redis calls, in seconds.
    timeout: float = 0.25


@dataclass(frozen=True)
class SecuritySettings:
    # Key-encryption keys for private signing keys and TOTP secrets: {"key-id": "<base64 32 bytes>"}.
    # Empty on the embedded default: a key is generated into `key_file` on first start.
    encryption_keys: dict[str, Secret] = field(default_factory=dict)
    # Which of `encryption_keys` encrypts new data (older ones still decrypt).
    active_encryption_key: str = ""
    # Where the embedded default keeps its generated encryption key (never used in production).
    key_file: str = "./authserver-secrets.json"
    # Proxies whose X-Forwarded-For is trusted, as IP addresses or networks (CIDR).
    trusted_proxies: list[str] = field(default_factory=list)
    # Request header in which a TLS-terminating proxy forwards the client certificate (mutual TLS, RFC 8705),
    # e.g. X-SSL-Client-Cert; believed only from trusted_proxies, and the proxy must overwrite it on every
    # request. URL-encoded PEM (nginx $ssl_client_escaped_cert), PEM, base64 DER or an Envoy
    # x-forwarded-client-cert element (docs/sender-constrained-tokens-mtls.md). Empty: off.
    client_certificate_header: str = ""
    # Header in which the proxy says whether it verified the certificate's chain against the client CAs
    # (nginx $ssl_client_verify): tls_client_auth then needs the value SUCCESS. Empty: the proxy forwards
    # only certificates it verified (nginx ssl_verify_client on|optional, not optional_no_ca).
    client_certificate_verify_header: str = ""


@dataclass(frozen=True)
class TokenSettings:
    # Default lifetimes in seconds; a client may override access and refresh lifetimes.
    access_token_ttl: int = 900
    id_token_ttl: int = 3600
    # Authorization codes are single use and live at most this long (≤ 60 s).
    code_ttl: int = 60
    # Refresh tokens expire after this much idle time, and at the latest after the absolute lifetime.
    refresh_token_idle_ttl: int = 14 * 24 * 3600
    refresh_token_absolute_ttl: int = 90 * 24 * 3600
    # Grace period of refresh rotation, in seconds (0: strict, every reuse revokes the family): the same client
    # presenting a just-rotated refresh token again within it, while its successor is unused, gets the same
    # answer back (a response lost on a bad network) instead of revoking the family. At most 300 s; see
    # docs/token-lifecycle.md. Needs the shared cache (Redis) when several instances run.
    refresh_token_grace_period: int = 30
    # Default signing algorithm for access and ID tokens (ES256 or RS256).
    signing_alg: str = "ES256"
    # JWKS Cache-Control max-age in seconds: verifiers may cache the key set this long.
    jwks_max_age: int = 300
    # The signed revocation feed (/revocations, docs/verifying-tokens.md): each document's exp is this many
    # seconds after it is signed (it is re-signed every 60 s, so a served one has at least lifetime - 61 s
    # left), and responses carry Cache-Control max-age=revocation_feed_max_age.
    revocation_feed_lifetime: int = 600
    revocation_feed_max_age: int = 5
    # Scopes clients may request (RFC 6749 §3.3 scope tokens; one listed twice counts once).
    scopes: list[str] = field(
        default_factory=lambda: [
            "openid", "profile", "email", "offline_access",
            "read:stations", "read:levels", "read:alerts", "write:alerts", "mfa:manage", "admin",
        ]
    )

    def __post_init__(self) -> None:
        # A scope listed twice is kept once, where it first appears (validate() checks the syntax).
        object.__setattr__(self, "scopes", unique(self.scopes))


@dataclass(frozen=True)
class KeySettings:
    # Signing algorithms that get keys (ES256, RS256, EdDSA); tokens.signing_alg is always included.
    algorithms: list[str] = field(default_factory=lambda: ["ES256", "RS256"])
    # Rotate signing keys on the schedule below (false: only `authserver keys rotate` rotates).
    auto_rotate: bool = True
    # How long a key signs before the next one takes over, in seconds (30 days).
    rotation_interval: int = 30 * 24 * 3600
    # Least time a new key is published in the JWKS before it signs, in seconds; at least tokens.jwks_max_age + keys.reload_interval.
    # 3 h by default: AWS API Gateway's built-in JWT authorizer caches a JWKS for up to 2 h whatever max-age says.
    publish_ahead: int = 3 * 3600
    # Extra seconds a retired key stays published after its last token expired (verifiers' clock leeway).
    retire_leeway: int = 300
    # Every instance re-reads the keys and runs the schedule this often, in seconds: the bound on how long a key change takes to reach every instance.
    reload_interval: int = 30


@dataclass(frozen=True)
class LoginSettings:
    # Browser session lifetime in seconds (absolute) and idle timeout.
    session_ttl: int = 12 * 3600
    session_idle_ttl: int = 2 * 3600
    # How long a pending authorization request waits for the person to sign in.
    interaction_ttl: int = 900
    # Language of pages when neither ui_locales nor Accept-Language picks one (es or en).
    default_locale: str = "es"


@dataclass(frozen=True)
class ChaosSettings:
    # Fault injection for staging rehearsals (refused in production): extra latency in milliseconds and the
    # probability (0-1) that a database or cache call fails, so operators can rehearse outages.
    database_latency_ms: int = 0
    database_error_rate: float = 0.0
    cache_latency_ms: int = 0
    cache_error_rate: float = 0.0

    @property
    def enabled(self) -> bool:
        return any((self.database_latency_ms, self.database_error_rate, self.cache_latency_ms, self.cache_error_rate))


@dataclass(frozen=True)
class LifecycleSettings:
    # Seconds between runs of the purge (expired codes, tokens, sessions, deny-list entries, sign-in
    # throttles, old security events), on one instance at a time (the `purge` job of authserver.jobs;
    # 0: never; run `authserver purge` from cron instead).
    purge_interval: int = 3600
    # Rows deleted per statement: small batches keep locks on hot tables short.
    purge_batch_size: int = 500
    # How long expired or consumed codes, refresh tokens and grants are kept before deletion, in seconds
    # (a reused code or refresh token is only detected, and its family revoked, while its row exists).
    purge_retention: int = 7 * 24 * 3600
    # Seconds to pause between two purge batches, so the purge never holds the hot tables for long.
    purge_pause: float = 0.05
    # Security events older than this many seconds are deleted by the purge (400 days).
    event_retention: int = 400 * 24 * 3600
    # After this many seconds the purge drops the IP address and user agent from security events; the event
    # itself (with its account id or the pseudonym of an erased account) stays until event_retention (30 days).
    event_personal_data_retention: int = 30 * 24 * 3600


@dataclass(frozen=True)
class MfaSettings:
    # Issuer shown in authenticator apps (the otpauth:// URI's issuer and label prefix).
    issuer: str = "CMIPRO"
    # Roles whose members must use a second factor for every client (they enrol at their next sign-in).
    required_roles: list[str] = field(default_factory=lambda: ["admin"])
    # Wrong second-factor codes allowed per account within `failure_window` seconds before the lock.
    max_failures: int = 5
    failure_window: int = 900
    # How long, in seconds, the second step stays locked once `max_failures` is reached.
    lockout_seconds: int = 900
    # How many backup codes are issued at enrolment and on regeneration.
    backup_code_count: int = 10


@dataclass(frozen=True)
class AbuseSettings:
    # Failed sign-ins per username (known or not) within account_failure_window that lock its password step.
    account_failures: int = 5
    # Seconds over which account_failures are counted.
    account_failure_window: int = 3600
    # First account lock in seconds; each further lock doubles it.
    account_lock_seconds: int = 60
    # Longest account lock in seconds.
    account_lock_max_seconds: int = 3600
    # Failed sign-ins from one client IP within ip_failure_window that block sign-in from it.
    ip_failures: int = 20
    # Seconds over which ip_failures are counted.
    ip_failure_window: int = 3600
    # First IP block in seconds (also for client-authentication locks); doubles on each further block.
    ip_lock_seconds: int = 900
    # Longest IP block in seconds.
    ip_lock_max_seconds: int = 6 * 3600
    # Failed client authentications at the token endpoint per (client id, IP) that lock that pair.
    client_failures: int = 10
    # Failed client authentications at the token endpoint per IP that lock that IP.
    client_ip_failures: int = 20
    # Seconds over which client_failures and client_ip_failures are counted.
    client_failure_window: int = 3600
    # Lock escalation is forgotten after this many seconds without failures.
    lock_reset_seconds: int = 24 * 3600
    # Client-authentication locks are checked against a per-instance copy of the locks table, reloaded at
    # most this often (seconds), so the token endpoint's hot path has no database round trip. A lock set on
    # another instance applies here within this time; one set here applies at once.
    client_lock_view_seconds: float = 1.0
    # Requests per minute per client IP at /authorize.
    authorize_per_ip: int = 60
    # Requests per minute per client IP at /login (GET and POST).
    login_per_ip: int = 30
    # Requests per minute per client IP at the MFA step.
    mfa_per_ip: int = 30
    # Token requests per minute per authenticated client (a client's rate_limit_per_minute overrides it).
    token_per_client: int = 600
    # Introspection requests per minute per authenticated client.
    introspection_per_client: int = 1200
    # Revocation requests per minute per authenticated client.
    revocation_per_client: int = 600
    # UserInfo requests per minute per access token.
    userinfo_per_token: int = 120
    # Password-reset requests per minute per client IP.
    password_reset_per_ip: int = 10
    # Password-reset requests per minute per e-mail address (known or not): caps the mail one address gets.
    password_reset_per_address: int = 2
    # Sign-up attempts (POST /signup) per minute per client IP.
    signup_per_ip: int = 5
    # Emergency mode divides the per-IP limits and the per-IP sign-in failure threshold by this.
    emergency_divisor: int = 4
    # Emergency mode turns itself on when this many failed sign-ins and refused anonymous requests (429 at
    # /authorize, /login, the MFA step) are counted across every instance within emergency_trigger_window
    # seconds (counted with the rate limits, in Redis). 0: only an operator switches it on.
    emergency_trigger_failures: int = 600
    # Seconds over which emergency_trigger_failures are counted.
    emergency_trigger_window: int = 60
    # How long emergency mode stays on, in seconds, once switched on automatically or without a duration.
    emergency_duration: int = 3600
    # With Redis unreachable, per-instance limits guarding human-chosen secrets are divided by this.
    fallback_divisor: int = 4
    # After a Redis error, use the per-instance limiter for this many seconds before trying Redis again.
    breaker_seconds: float = 5.0
    # More request headers than this are refused with 431 before parsing.
    max_headers: int = 100
    # More request header bytes than this are refused with 431 before parsing.
    max_header_bytes: int = 16 * 1024


@dataclass(frozen=True)
class AdminSettings:
    # Scope an access token needs for the admin API (/admin/api). A client obtains it only if its own
    # allowed scopes list it (and it must be in tokens.scopes).
    scope: str = "admin"
    # Roles a user may hold (the access token's `roles` claim); the `admin` role opens the admin API to a
    # person who signed in with MFA.
    roles: list[str] = field(default_factory=lambda: ["free_user", "premium_user", "admin"])
    # Default grace period of a rotated client secret, in seconds: old and new secrets both work meanwhile.
    secret_rotation_grace: int = 24 * 3600
    # Initial access tokens accepted by dynamic client registration (RFC 7591 §3), besides CLI-issued ones.
    registration_tokens: list[Secret] = field(default_factory=list)
    # Scopes a dynamically registered client may be given (never the admin scope).
    registration_scopes: list[str] = field(
        default_factory=lambda: [
            "openid", "profile", "email", "offline_access",
            "read:stations", "read:levels", "read:alerts", "write:alerts",
        ]
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "registration_scopes", unique(self.registration_scopes))


@dataclass(frozen=True)
class ClientSecretSettings:
    # Lifetime of a new client secret, in seconds (90 days; 0: secrets never expire). Registration answers
    # it as client_secret_expires_at (RFC 7591 §3.2.1). The grace of a rotation is admin.secret_rotation_grace.
    lifetime: int = 90 * 24 * 3600
    # The rotation job issues a successor this long before a secret expires (7 days).
    rotate_before: int = 7 * 24 * 3600
    # Seconds between runs of the rotation job (one instance of the fleet runs it; 0: off).
    rotation_interval: int = 3600
    # Seconds an instance counts secret usage in memory before adding it to the database.
    usage_flush_interval: float = 10.0
    # Notification webhook: seconds per attempt, and attempts per run (then retried at the next run).
    webhook_timeout: float = 5.0
    webhook_attempts: int = 3


@dataclass(frozen=True)
class ObservabilitySettings:
    # Bearer token that /metrics requires. Empty: /metrics is open (keep it off the public load balancer).
    metrics_token: Secret = Secret("")
    # Log format of `authserver serve`: json (one object per line, with request_id and traceparent) or text.
    log_format: str = "json"
    # Log level of the authserver loggers (DEBUG, INFO, WARNING, ERROR).
    log_level: str = "INFO"
    # Seconds /readyz answers 503 after SIGTERM before the server stops accepting connections, so the load
    # balancer deregisters the instance first; in-flight requests then get up to graceful_timeout seconds.
    shutdown_drain_seconds: float = 0.0
    # Seconds uvicorn lets in-flight requests finish after it stops accepting connections.
    graceful_timeout: int = 20
    # OpenTelemetry server spans per request (needs the otel extra; exporter from the OTEL_* variables).
    tracing: bool = False
    # Store a security event for every client-credentials token. Off: machine tokens are counted per client
    # (authserver_tokens_issued) but not stored, since a busy service would add millions of rows a day;
    # tokens issued to people (code, refresh) are always stored.
    store_machine_token_events: bool = False


@dataclass(frozen=True)
class MailSettings:
    # SMTP server for password-reset and verification mail. Empty: no mail is sent, and the pages that
    # need it (password reset, sign-up, e-mail change) say so instead of offering it.
    host: str = ""
    port: int = 587
    # starttls (upgrade on connect, port 587), tls (implicit TLS, port 465) or none (a local relay only;
    # refused in production).
    security: str = "starttls"
    # SMTP AUTH credentials (both empty: no AUTH).
    username: str = ""
    password: Secret = Secret("")
    # The From: address of every mail, e.g. "CMIPRO <no-reply@cmipro.hn>". Required when host is set.
    sender: str = ""
    # Seconds for connecting to and talking with the SMTP server.
    timeout: float = 10.0

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True)
class SelfServiceSettings:
    # Lifetime of a password-reset link in seconds (single use).
    reset_token_ttl: int = 1800
    # Lifetime of an e-mail verification link in seconds (single use).
    verify_token_ttl: int = 24 * 3600
    # The public sign-up page /signup. Off by default: accounts are made by operators (CLI, admin API)
    # unless the deployment chooses to let people register themselves.
    signup: bool = False
    # With signup on: only people holding an invitation code (`authserver invitation create`) may register.
    signup_requires_invitation: bool = False
    # Roles a self-registered account gets (each must be in admin.roles).
    signup_roles: list[str] = field(default_factory=lambda: ["free_user"])
    # Lifetime in seconds of an invitation code made without an explicit expiry (default 7 days).
    invitation_ttl: int = 7 * 24 * 3600
    # Seconds after a sign-in with a backup code during which the person may set up a new authenticator
    # in one step (MFA recovery, /account/mfa/recover).
    mfa_recovery_ttl: int = 900


@dataclass(frozen=True)
class CorsSettings:
    # Browser apps (SPAs) on these origins may call /token, /revoke and /userinfo with fetch(); never "*",
    # never with credentials. Each is scheme://host[:port] with no path.
    allowed_origins: list[str] = field(default_factory=list)
    # Also allow the origins of the http(s) redirect URIs registered by public clients.
    from_redirect_uris: bool = True
    # Also answer CORS at /introspect (off: introspection is for resource servers, not browsers).
    introspection: bool = False
    # Seconds a browser may cache a preflight answer (Access-Control-Max-Age).
    max_age: int = 600
    # Seconds between reloads of the registered origins from the client registry (per instance).
    refresh_seconds: float = 10.0


@dataclass(frozen=True)
class DpopSettings:
    # DPoP (RFC 9449, docs/sender-constrained-tokens.md). Algorithms a proof may be signed with (asymmetric
    # only; advertised as dpop_signing_alg_values_supported).
    signing_algs: list[str] = field(default_factory=lambda: ["ES256", "ES384", "RS256", "PS256", "EdDSA"])
    # A proof's iat may be this many seconds old, and this many seconds ahead of our clock.
    max_age: int = 60
    leeway: int = 5
    # Proofs longer than this many bytes are refused before parsing.
    max_proof_bytes: int = 8192
    # Require a server nonce (RFC 9449 §8-9) in every proof, at /token and at our protected endpoints.
    require_nonce: bool = False
    # A nonce is valid for this many seconds to twice as long (stateless: derived from the encryption key).
    nonce_lifetime: int = 300


@dataclass(frozen=True)
class ClientAuthSettings:
    # private_key_jwt / client_secret_jwt (RFC 7523, docs/client-authentication.md). An assertion may live at
    # most this many seconds (exp - now; Authlib, for one, signs for 3600 s); longer ones are refused.
    assertion_max_lifetime: int = 3600
    # Seconds of clock skew allowed on an assertion's exp, iat and nbf.
    assertion_leeway: int = 5
    # Fetching a client's jwks_uri: timeout in seconds, largest answer in bytes, and how long a fetched key
    # set is used (seconds). An assertion with an unknown kid refetches at once, at most once per
    # jwks_uri_refetch_interval seconds per URL and instance. http URLs are refused in production.
    jwks_uri_timeout: float = 3.0
    jwks_uri_max_bytes: int = 64 * 1024
    jwks_uri_cache_ttl: int = 300
    jwks_uri_refetch_interval: float = 30.0


@dataclass(frozen=True)
class ParSettings:
    # Pushed authorization requests (RFC 9126): seconds a request_uri stays valid (single use).
    request_uri_ttl: int = 60
    # Require every client to push its authorization requests (a client can also be required on its own:
    # require_pushed_authorization_requests).
    required: bool = False


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    tokens: TokenSettings = field(default_factory=TokenSettings)
    keys: KeySettings = field(default_factory=KeySettings)
    login: LoginSettings = field(default_factory=LoginSettings)
    chaos: ChaosSettings = field(default_factory=ChaosSettings)
    lifecycle: LifecycleSettings = field(default_factory=LifecycleSettings)
    mfa: MfaSettings = field(default_factory=MfaSettings)
    abuse: AbuseSettings = field(default_factory=AbuseSettings)
    admin: AdminSettings = field(default_factory=AdminSettings)
    observability: ObservabilitySettings = field(default_factory=ObservabilitySettings)
    mail: MailSettings = field(default_factory=MailSettings)
    self_service: SelfServiceSettings = field(default_factory=SelfServiceSettings)
    cors: CorsSettings = field(default_factory=CorsSettings)
    client_secrets: ClientSecretSettings = field(default_factory=ClientSecretSettings)
    dpop: DpopSettings = field(default_factory=DpopSettings)
    client_auth: ClientAuthSettings = field(default_factory=ClientAuthSettings)
    par: ParSettings = field(default_factory=ParSettings)

    @property
    def cookie_secure(self) -> bool:
        if self.server.cookie_secure is not None:
            return self.server.cookie_secure
        parts = urlsplit(self.server.issuer)
        return not (parts.scheme == "http" and parts.hostname in {"localhost", "127.0.0.1", "::1"})

    @property
    def mtls_enabled(self) -> bool:
        """Clients can present TLS certificates: serve asks for them, or a proxy forwards them (RFC 8705)."""
        return bool(self.server.tls_client_ca_file or self.security.client_certificate_header)

    def replace(self, **groups: Mapping[str, Any]) -> Settings:
        """A copy with some fields changed: ``settings.replace(tokens={"code_ttl": 30})``."""
        changed = {name: dataclasses.replace(getattr(self, name), **values) for name, values in groups.items()}
        return dataclasses.replace(self, **changed)


def _cast(path: str, annotation: Any, raw: Any) -> Any:
    """Turn a TOML value or an environment string into the field's type, or say which setting is wrong."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (types.UnionType, typing.Union):
        inner = [a for a in args if a is not type(None)]
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in {"", "none", "auto"}):
            return None
        return _cast(path, inner[0], raw)
    try:
        if annotation is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(f"expected a boolean, got {raw!r}")
        if annotation is int:
            if isinstance(raw, bool):
                raise ValueError("expected an integer")
            return int(raw)
        if annotation is float:
            return float(raw)
        if annotation in (str, Secret):
            if not isinstance(raw, str):
                raise ValueError(f"expected a string, got {type(raw).__name__}")
            return annotation(raw)
        if origin is list:
            if isinstance(raw, str):
                raw = json.loads(raw) if raw.strip().startswith("[") else [p for p in raw.replace(",", " ").split() if p]
            if not isinstance(raw, list):
                raise ValueError("expected a list")
            return [_cast(path, args[0], item) for item in raw]
        if origin is dict:
            if isinstance(raw, str):
                raw = json.loads(raw)
            if not isinstance(raw, dict):
                raise ValueError("expected a table")
            return {str(k): _cast(f"{path}.{k}", args[1], v) for k, v in raw.items()}
    except (ValueError, TypeError, json.JSONDecodeError) as exc:
        raise SettingsError(f"setting {path}: {exc}") from None
    raise SettingsError(f"setting {path}: unsupported type {annotation!r}")  # pragma: no cover


def _group_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def load_settings(environ: Mapping[str, str] | None = None, path: str | os.PathLike[str] | None = None) -> Settings:
    """Build validated settings from defaults, a TOML file and the environment."""
    environ = os.environ if environ is None else environ
    file_values: dict[str, Any] = {}
    path = path or environ.get(f"{ENV_PREFIX}CONFIG") or None
    if path is not None:
        try:
            file_values = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SettingsError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path}: {exc}") from None

    group_hints = _group_types(Settings)
    unknown_groups = set(file_values) - set(group_hints)
    if unknown_groups:
        raise SettingsError(f"config file {path}: unknown section(s) {sorted(unknown_groups)}")
    groups: dict[str, Any] = {}
    for group_name, group_cls in group_hints.items():
        hints = _group_types(group_cls)
        section = file_values.get(group_name, {})
        if not isinstance(section, dict):
            raise SettingsError(f"setting {group_name}: expected a table")
        unknown = set(section) - set(hints)
        if unknown:
            raise SettingsError(f"config file {path}: unknown setting(s) {group_name}.{sorted(unknown)[0]}")
        values: dict[str, Any] = {}
        for name, annotation in hints.items():
            dotted = f"{group_name}.{name}"
            env_key = f"{ENV_PREFIX}{group_name.upper()}__{name.upper()}"
            if env_key in environ:
                values[name] = _cast(dotted, annotation, environ[env_key])
            elif name in section:
                values[name] = _cast(dotted, annotation, section[name])
        groups[group_name] = group_cls(**values)
    settings = Settings(**groups)
    if not settings.server.issuer:
        host = settings.server.host
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if settings.server.tls_certfile else "http"
        settings = settings.replace(server={"issuer": f"{scheme}://{host}:{settings.server.port}"})
    validate(settings)
    return settings


def _validate_dpop(dpop: DpopSettings) -> None:
    known = {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
    if not dpop.signing_algs or not set(dpop.signing_algs) <= known:
        raise SettingsError(f"setting dpop.signing_algs: one or more of {', '.join(sorted(known))}")
    if not 1 <= dpop.max_age <= 3600 or not 0 <= dpop.leeway <= 300:
        raise SettingsError("setting dpop.max_age / dpop.leeway: 1-3600 and 0-300 seconds")
    if not 1024 <= dpop.max_proof_bytes <= 65536:
        raise SettingsError("setting dpop.max_proof_bytes: between 1024 and 65536")
    if dpop.nonce_lifetime < 10:
        raise SettingsError("setting dpop.nonce_lifetime: at least 10 seconds")


def validate(settings: Settings) -> None:
    """Fail fast, naming the setting, on anything the server cannot run with safely."""
    server, tokens, security = settings.server, settings.tokens, settings.security
    parts = urlsplit(server.issuer)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise SettingsError("setting server.issuer: must be an absolute http(s) URL")
    if parts.query or parts.fragment or server.issuer.endswith("/"):
        raise SettingsError("setting server.issuer: no query, fragment or trailing slash")
    if not 1 <= server.port <= 65535:
        raise SettingsError("setting server.port: must be 1-65535")
    if server.workers < 1:
        raise SettingsError("setting server.workers: must be at least 1")
    if not 1 <= tokens.code_ttl <= 60:
        raise SettingsError("setting tokens.code_ttl: must be between 1 and 60 seconds")
    if tokens.signing_alg not in {"ES256", "RS256", "EdDSA"}:
        raise SettingsError("setting tokens.signing_alg: one of ES256, RS256, EdDSA")
    for name in ("access_token_ttl", "id_token_ttl", "refresh_token_idle_ttl", "refresh_token_absolute_ttl", "jwks_max_age"):
        if getattr(tokens, name) <= 0:
            raise SettingsError(f"setting tokens.{name}: must be positive")
    if not 0 <= tokens.refresh_token_grace_period <= 300:
        raise SettingsError("setting tokens.refresh_token_grace_period: must be between 0 (strict rotation) and 300 seconds")
    if tokens.revocation_feed_lifetime < 120:
        raise SettingsError("setting tokens.revocation_feed_lifetime: must be at least 120 seconds (the feed is re-signed every 60 s)")
    if not 0 <= tokens.revocation_feed_max_age <= 60:
        raise SettingsError("setting tokens.revocation_feed_max_age: must be between 0 and 60 seconds")
    _validate_keys(settings)
    _validate_dpop(settings.dpop)
    for scope in tokens.scopes:
        if not is_scope_token(scope):
            raise SettingsError(
                f"setting tokens.scopes: {scope!r} is not a scope token (RFC 6749 §3.3: printable ASCII, no space, quote or backslash)"
            )
    if "openid" not in tokens.scopes:
        raise SettingsError("setting tokens.scopes: must include openid")
    lifecycle = settings.lifecycle
    if lifecycle.purge_interval < 0:
        raise SettingsError("setting lifecycle.purge_interval: must be 0 (off) or positive")
    if not 1 <= lifecycle.purge_batch_size <= 10_000:
        raise SettingsError("setting lifecycle.purge_batch_size: must be between 1 and 10000")
    if lifecycle.purge_retention < 0:
        raise SettingsError("setting lifecycle.purge_retention: must not be negative")
    if lifecycle.purge_pause < 0:
        raise SettingsError("setting lifecycle.purge_pause: must not be negative")
    if not 0 < lifecycle.event_personal_data_retention <= lifecycle.event_retention:
        raise SettingsError(
            "setting lifecycle.event_personal_data_retention: positive and at most lifecycle.event_retention"
        )
    if settings.login.default_locale not in {"es", "en"}:
        raise SettingsError("setting login.default_locale: es or en")
    if not settings.cache.url.startswith(("memory://", "redis://", "rediss://", "unix://")):
        raise SettingsError("setting cache.url: memory:// or redis://")
    if not settings.database.url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise SettingsError("setting database.url: sqlite+aiosqlite:// or postgresql+asyncpg://")
    if security.encryption_keys and security.active_encryption_key not in security.encryption_keys:
        raise SettingsError("setting security.active_encryption_key: must name one of security.encryption_keys")
    mfa = settings.mfa
    if not mfa.issuer or ":" in mfa.issuer or len(mfa.issuer) > 64:
        raise SettingsError("setting mfa.issuer: 1-64 characters, no colon")
    for name in ("max_failures", "failure_window", "lockout_seconds"):
        if getattr(mfa, name) < 1:
            raise SettingsError(f"setting mfa.{name}: must be at least 1")
    if not 1 <= mfa.backup_code_count <= 20:
        raise SettingsError("setting mfa.backup_code_count: between 1 and 20")
    for f in dataclasses.fields(AbuseSettings):
        if getattr(settings.abuse, f.name) <= 0 and f.name != "emergency_trigger_failures":
            raise SettingsError(f"setting abuse.{f.name}: must be positive")
    if settings.abuse.emergency_trigger_failures < 0:
        raise SettingsError("setting abuse.emergency_trigger_failures: 0 (off) or positive")
    for proxy in security.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise SettingsError(f"setting security.trusted_proxies: {proxy!r} is not an IP address or network") from None
    if server.workers > 1 and settings.cache.url.startswith("memory://"):
        raise SettingsError("setting server.workers: several workers need a shared cache (cache.url = redis://…)")
    chaos = settings.chaos
    for name in ("database_error_rate", "cache_error_rate"):
        if not 0.0 <= getattr(chaos, name) <= 1.0:
            raise SettingsError(f"setting chaos.{name}: a probability between 0 and 1")
    for name in ("database_latency_ms", "cache_latency_ms"):
        if getattr(chaos, name) < 0:
            raise SettingsError(f"setting chaos.{name}: must not be negative")
    if server.production:
        if chaos.enabled:
            raise SettingsError("setting chaos: fault injection is refused in production")
    admin, observability = settings.admin, settings.observability
    if not admin.scope or admin.scope not in tokens.scopes:
        raise SettingsError("setting admin.scope: must be listed in tokens.scopes")
    if admin.scope in admin.registration_scopes or not set(admin.registration_scopes) <= set(tokens.scopes):
        raise SettingsError("setting admin.registration_scopes: a subset of tokens.scopes without the admin scope")
    if admin.secret_rotation_grace < 0:
        raise SettingsError("setting admin.secret_rotation_grace: must not be negative")
    _validate_client_secrets(settings)
    if observability.log_format not in {"json", "text"}:
        raise SettingsError("setting observability.log_format: json or text")
    if observability.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError("setting observability.log_level: DEBUG, INFO, WARNING or ERROR")
    if observability.shutdown_drain_seconds < 0 or observability.graceful_timeout < 0:
        raise SettingsError("setting observability.shutdown_drain_seconds/graceful_timeout: must not be negative")
    _validate_self_service(settings)
    _validate_mtls(settings)
    if server.production:
        if settings.mail.enabled and settings.mail.security == "none":
            raise SettingsError("setting mail.security: none (no TLS) is refused in production")
        for token in admin.registration_tokens:
            if len(token) < 32 or any(marker in token.lower() for marker in PLACEHOLDER_MARKERS):
                raise SettingsError("setting admin.registration_tokens: at least 32 random characters in production")
        if parts.scheme != "https":
            raise SettingsError("setting server.issuer: must be https in production")
        if not security.encryption_keys:
            raise SettingsError("setting security.encryption_keys: required in production")
        for key_id, value in security.encryption_keys.items():
            if any(marker in value.lower() for marker in PLACEHOLDER_MARKERS):
                raise SettingsError(f"setting security.encryption_keys.{key_id}: placeholder value refused in production")
        if settings.database.url.startswith("sqlite"):
            raise SettingsError("setting database.url: PostgreSQL is required in production")
        if settings.cache.url.startswith("memory://"):
            raise SettingsError("setting cache.url: Redis is required in production")
        if server.cookie_secure is False:
            raise SettingsError("setting server.cookie_secure: cannot be false in production")


def _validate_client_secrets(settings: Settings) -> None:
    own = settings.client_secrets
    if own.lifetime < 0 or own.rotation_interval < 0:
        raise SettingsError("setting client_secrets.lifetime/rotation_interval: 0 (off) or positive")
    if own.lifetime and not 0 < own.rotate_before < own.lifetime:
        raise SettingsError("setting client_secrets.rotate_before: positive and shorter than client_secrets.lifetime")
    if own.usage_flush_interval <= 0 or own.webhook_timeout <= 0:
        raise SettingsError("setting client_secrets.usage_flush_interval/webhook_timeout: must be positive")
    if not 1 <= own.webhook_attempts <= 10:
        raise SettingsError("setting client_secrets.webhook_attempts: between 1 and 10")


def _validate_self_service(settings: Settings) -> None:
    mail, own, cors = settings.mail, settings.self_service, settings.cors
    if mail.security not in {"starttls", "tls", "none"}:
        raise SettingsError("setting mail.security: starttls, tls or none")
    if not 1 <= mail.port <= 65535:
        raise SettingsError("setting mail.port: must be 1-65535")
    if mail.timeout <= 0:
        raise SettingsError("setting mail.timeout: must be positive")
    if mail.enabled and ("@" not in mail.sender or "\n" in mail.sender or "\r" in mail.sender):
        raise SettingsError("setting mail.sender: an e-mail address is required when mail.host is set")
    if bool(mail.username) != bool(mail.password):
        raise SettingsError("setting mail.username/mail.password: give both or neither")
    for name in ("reset_token_ttl", "verify_token_ttl", "mfa_recovery_ttl"):
        if not 60 <= getattr(own, name) <= 7 * 24 * 3600:
            raise SettingsError(f"setting self_service.{name}: between 60 seconds and 7 days")
    if not 60 <= own.invitation_ttl <= 365 * 24 * 3600:
        raise SettingsError("setting self_service.invitation_ttl: between 60 seconds and 365 days")
    unknown_roles = sorted(set(own.signup_roles) - set(settings.admin.roles))
    if unknown_roles or "admin" in own.signup_roles:
        raise SettingsError(f"setting self_service.signup_roles: roles of admin.roles other than admin (not {unknown_roles or ['admin']})")
    for origin in cors.allowed_origins:
        parts = urlsplit(origin)
        if parts.scheme not in {"http", "https"} or not parts.hostname or origin != f"{parts.scheme}://{parts.netloc}":
            raise SettingsError(f"setting cors.allowed_origins: {origin!r} is not an origin (scheme://host[:port])")
    if cors.max_age < 0 or cors.refresh_seconds <= 0:
        raise SettingsError("setting cors.max_age/cors.refresh_seconds: must not be negative / must be positive")
    client_auth = settings.client_auth
    if not 10 <= client_auth.assertion_max_lifetime <= 3600 or not 0 <= client_auth.assertion_leeway <= 60:
        raise SettingsError("setting client_auth.assertion_max_lifetime/assertion_leeway: 10-3600 / 0-60 seconds")
    if client_auth.jwks_uri_timeout <= 0 or client_auth.jwks_uri_max_bytes < 1024 or client_auth.jwks_uri_cache_ttl < 0:
        raise SettingsError("setting client_auth.jwks_uri_*: timeout positive, max_bytes at least 1024, cache_ttl not negative")
    if client_auth.jwks_uri_refetch_interval < 0:
        raise SettingsError("setting client_auth.jwks_uri_refetch_interval: must not be negative")
    if not 5 <= settings.par.request_uri_ttl <= 600:
        raise SettingsError("setting par.request_uri_ttl: 5-600 seconds (RFC 9126 §2.2: short-lived)")


def _validate_mtls(settings: Settings) -> None:
    server, security = settings.server, settings.security
    if bool(server.tls_certfile) != bool(server.tls_keyfile):
        raise SettingsError("setting server.tls_certfile/server.tls_keyfile: give both or neither")
    if server.tls_client_ca_file and not server.tls_certfile:
        raise SettingsError("setting server.tls_client_ca_file: needs server.tls_certfile (serve terminating TLS)")
    if server.tls_client_cert_required and not server.tls_client_ca_file:
        raise SettingsError("setting server.tls_client_cert_required: needs server.tls_client_ca_file")
    for name in ("tls_certfile", "tls_keyfile", "tls_client_ca_file"):
        path = getattr(server, name)
        if path and not Path(path).is_file():
            raise SettingsError(f"setting server.{name}: {path} is not a file")
    for name in ("client_certificate_header", "client_certificate_verify_header"):
        value = getattr(security, name)
        if value and not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}", value):
            raise SettingsError(f"setting security.{name}: a header name (RFC 9110 token)")
    if security.client_certificate_header and not security.trusted_proxies:
        raise SettingsError("setting security.client_certificate_header: needs security.trusted_proxies (the proxies that set it)")
    if security.client_certificate_verify_header and not security.client_certificate_header:
        raise SettingsError("setting security.client_certificate_verify_header: needs security.client_certificate_header")
    if server.mtls_base_url:
        parts = urlsplit(server.mtls_base_url)
        if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or server.mtls_base_url.endswith("/"):
            raise SettingsError("setting server.mtls_base_url: an https URL with no query, fragment or trailing slash")
        if not settings.mtls_enabled:
            raise SettingsError("setting server.mtls_base_url: mutual TLS is off (set server.tls_client_ca_file or security.client_certificate_header)")


def _validate_keys(settings: Settings) -> None:
    keys, tokens = settings.keys, settings.tokens
    unknown = [alg for alg in keys.algorithms if alg not in {"ES256", "RS256", "EdDSA"}]
    if unknown or not keys.algorithms:
        raise SettingsError("setting keys.algorithms: one or more of ES256, RS256, EdDSA")
    for name in ("rotation_interval", "publish_ahead", "reload_interval"):
        if getattr(keys, name) <= 0:
            raise SettingsError(f"setting keys.{name}: must be positive")
    if keys.retire_leeway < 0:
        raise SettingsError("setting keys.retire_leeway: must not be negative")
    if keys.publish_ahead < tokens.jwks_max_age + keys.reload_interval:
        # A verifier may hold a JWKS fetched just before an instance reloaded for jwks_max_age more seconds.
        raise SettingsError("setting keys.publish_ahead: must be at least tokens.jwks_max_age + keys.reload_interval")


def render_example() -> str:
    """The example TOML file: every setting with its default and the comment above its field."""
    source = Path(__file__).read_text(encoding="utf-8").splitlines()
    lines = [
        "# authserver settings: every option with its default (generated by `python -m authserver.settings`).",
        "# Environment variables AUTHSERVER_<SECTION>__<NAME> override this file,",
        "# e.g. AUTHSERVER_DATABASE__URL or AUTHSERVER_SECURITY__ENCRYPTION_KEYS='{\"k1\": \"...\"}'.",
        "",
    ]
    for group_name, group_cls in _group_types(Settings).items():
        lines.append(f"[{group_name}]")
        defaults = group_cls()
        for index, f in enumerate(dataclasses.fields(group_cls)):
            comment = _field_comment(source, group_cls.__name__, f.name)
            if comment and index:
                lines.append("")
            lines.extend(f"# {c}" for c in comment)
            value = getattr(defaults, f.name)
            lines.append(f"{'# ' if value is None else ''}{f.name} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def _field_comment(source: list[str], class_name: str, field_name: str) -> list[str]:
    inside = False
    comment: list[str] = []
    for line in source:
        stripped = line.strip()
        if line.startswith("class "):
            inside = line.startswith((f"class {class_name}(", f"class {class_name}:"))
            comment = []
            continue
        if not inside:
            continue
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("# ").rstrip())
        elif stripped.startswith(f"{field_name}:"):
            return comment
        elif stripped and not stripped.startswith(("\"", ")", "default_factory", "]")):
            comment = []
    return comment


def _toml_value(value: Any) -> str:
    if value is None:
        return '"auto"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(str(value))
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)  # pragma: no cover


if __name__ == "__main__":  # pragma: no cover
    sys.stdout.write(render_example() + "\n")
