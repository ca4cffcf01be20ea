"""Settings: one typed, documented home for every option.

Precedence: environment (``AUTHSERVER_<GROUP>__<FIELD>``) over a TOML file over the defaults below.
The TOML file is the ``path`` given to :func:`load_settings` (the CLI's ``--config``), else
``$AUTHSERVER_CONFIG``; with neither, only defaults and the environment apply.

Every field has a default and a comment; ``config/authserver.example.toml`` is rendered from these
dataclasses (``python -m authserver.settings``) and a test keeps it in sync.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
    # Test each pooled connection before use (PostgreSQL: three round trips per checkout, see
    # docs/performance.md). Off: a dead connection fails one request with 503, then the pool is renewed.
    pool_pre_ping: bool = True


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
    # Proxies whose X-Forwarded-For is trusted, as IP addresses.
    trusted_proxies: list[str] = field(default_factory=list)


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
    # Default signing algorithm for access and ID tokens (ES256, RS256 or EdDSA).
    signing_alg: str = "ES256"
    # JWKS Cache-Control max-age in seconds: verifiers may cache the key set this long.
    jwks_max_age: int = 300
    # Scopes clients may request.
    scopes: list[str] = field(
        default_factory=lambda: [
            "openid", "profile", "email", "offline_access",
            "read:stations", "read:levels", "read:alerts", "write:alerts",
        ]
    )


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
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    cache: CacheSettings = field(default_factory=CacheSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    tokens: TokenSettings = field(default_factory=TokenSettings)
    login: LoginSettings = field(default_factory=LoginSettings)

    @property
    def cookie_secure(self) -> bool:
        if self.server.cookie_secure is not None:
            return self.server.cookie_secure
        parts = urlsplit(self.server.issuer)
        return not (parts.scheme == "http" and parts.hostname in {"localhost", "127.0.0.1", "::1"})

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
        settings = settings.replace(server={"issuer": f"http://{host}:{settings.server.port}"})
    validate(settings)
    return settings


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
    if "openid" not in tokens.scopes:
        raise SettingsError("setting tokens.scopes: must include openid")
    if settings.login.default_locale not in {"es", "en"}:
        raise SettingsError("setting login.default_locale: es or en")
    if not settings.cache.url.startswith(("memory://", "redis://", "rediss://", "unix://")):
        raise SettingsError("setting cache.url: memory:// or redis://")
    if not settings.database.url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise SettingsError("setting database.url: sqlite+aiosqlite:// or postgresql+asyncpg://")
    if security.encryption_keys and security.active_encryption_key not in security.encryption_keys:
        raise SettingsError("setting security.active_encryption_key: must name one of security.encryption_keys")
    if server.workers > 1 and settings.cache.url.startswith("memory://"):
        raise SettingsError("setting server.workers: several workers need a shared cache (cache.url = redis://…)")
    if server.production:
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


def render_example() -> str:
    """The example TOML file: every setting with its default and the comment above its field."""
    source = Path(__file__).read_text(encoding="utf-8").splitlines()
    lines = ["# authserver settings: every option with its default.", "# Environment variables AUTHSERVER_<SECTION>__<NAME> override this file.", ""]
    for group_name, group_cls in _group_types(Settings).items():
        lines.append(f"[{group_name}]")
        defaults = group_cls()
        for f in dataclasses.fields(group_cls):
            comment = _field_comment(source, group_cls.__name__, f.name)
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
            inside = line.startswith(f"class {class_name}(")
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
