"""The committed configuration files: the example stays in sync with settings.py, local and production load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from authserver.keys.encryption import generate_key
from authserver.settings import SettingsError, load_settings, render_example

CONFIG = Path(__file__).resolve().parents[2] / "config"


def test_example_file_is_rendered_from_settings() -> None:
    committed = (CONFIG / "authserver.example.toml").read_text(encoding="utf-8")
    assert committed == render_example() + "\n", "run: python -m authserver.settings > config/authserver.example.toml"


def test_example_documents_every_field_and_loads_to_the_defaults() -> None:
    text = render_example()
    # Every field has its comment: a field line directly under a blank line or a section header needs one.
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if " = " in line and not line.startswith("#"):
            above = lines[index - 1]
            assert above.startswith("#") or (" = " in above), f"no comment above {line!r}"
    assert load_settings({}, path=CONFIG / "authserver.example.toml") == load_settings({})


def test_local_file_is_the_embedded_default_on_plain_http() -> None:
    settings = load_settings({}, path=CONFIG / "local.toml")
    assert settings.server.issuer == "http://127.0.0.1:8000"
    assert settings.server.host == "127.0.0.1"
    assert settings.cookie_secure is False
    assert settings.server.production is False
    assert settings.database.url.startswith("sqlite+aiosqlite:///")
    assert settings.cache.url == "memory://"
    assert settings.security.encryption_keys == {}


def production_environment() -> dict[str, str]:
    return {
        "AUTHSERVER_SECURITY__ENCRYPTION_KEYS": json.dumps({"k2026": generate_key()}),
        "AUTHSERVER_SECURITY__ACTIVE_ENCRYPTION_KEY": "k2026",
        "AUTHSERVER_DATABASE__URL": "postgresql+asyncpg://authserver:s3cret@db.internal:5432/authserver",
    }


def test_production_file_loads_with_its_environment() -> None:
    environ = production_environment()
    settings = load_settings(environ, path=CONFIG / "production.toml")
    assert settings.server.production is True
    assert settings.server.issuer.startswith("https://")
    assert settings.cookie_secure is True
    assert settings.server.demo is False
    assert settings.database.url == environ["AUTHSERVER_DATABASE__URL"]
    assert settings.cache.url.startswith("redis://")
    assert settings.security.active_encryption_key == "k2026"


def test_production_file_alone_refuses_to_start_without_encryption_keys() -> None:
    with pytest.raises(SettingsError, match="security.encryption_keys"):
        load_settings({}, path=CONFIG / "production.toml")


def test_production_file_refuses_a_placeholder_encryption_key() -> None:
    environ = production_environment() | {
        "AUTHSERVER_SECURITY__ENCRYPTION_KEYS": json.dumps({"k2026": "changeme-changeme-changeme-changeme-0"}),
    }
    with pytest.raises(SettingsError, match="placeholder"):
        load_settings(environ, path=CONFIG / "production.toml")


def test_production_file_contains_no_secret() -> None:
    text = (CONFIG / "production.toml").read_text(encoding="utf-8")
    settings_lines = [line for line in text.splitlines() if line and not line.lstrip().startswith("#")]
    assert not any(line.startswith(("encryption_keys", "active_encryption_key")) for line in settings_lines)
    assert not any("@" in line and ":" in line.split("@")[0].split("//")[-1] for line in settings_lines), "password in a URL"
