"""Settings: environment over TOML over defaults; bad values name the setting; production refuses unsafe choices."""

from __future__ import annotations

from pathlib import Path

import pytest

from authserver.keys.encryption import generate_key
from authserver.settings import Settings, SettingsError, load_settings

PROD_OK = {
    "AUTHSERVER_SERVER__PRODUCTION": "true",
    "AUTHSERVER_SERVER__ISSUER": "https://auth.cmipro.example",
    "AUTHSERVER_DATABASE__URL": "postgresql+asyncpg://auth@db/auth",
    "AUTHSERVER_CACHE__URL": "redis://cache:6379/0",
    "AUTHSERVER_SECURITY__ENCRYPTION_KEYS": '{"k1": "%s"}' % generate_key(),
    "AUTHSERVER_SECURITY__ACTIVE_ENCRYPTION_KEY": "k1",
}


def test_defaults_without_file_or_environment() -> None:
    settings = load_settings({})
    assert settings.server.issuer == "http://127.0.0.1:8000"
    assert settings.tokens.code_ttl == 60 and settings.tokens.signing_alg == "ES256"
    assert settings.tokens.refresh_token_grace_period == 30
    assert load_settings({"AUTHSERVER_TOKENS__REFRESH_TOKEN_GRACE_PERIOD": "0"}).tokens.refresh_token_grace_period == 0
    assert settings.database.url.startswith("sqlite+aiosqlite://") and settings.cache.url == "memory://"
    assert settings.cookie_secure is False  # http on loopback: the embedded default works in a browser


def test_environment_beats_toml_beats_defaults(tmp_path: Path) -> None:
    config = tmp_path / "authserver.toml"
    config.write_text('[tokens]\naccess_token_ttl = 600\nid_token_ttl = 1200\n[server]\nissuer = "https://from-file.example"\n')
    settings = load_settings({"AUTHSERVER_TOKENS__ACCESS_TOKEN_TTL": "300"}, config)
    assert settings.tokens.access_token_ttl == 300  # environment
    assert settings.tokens.id_token_ttl == 1200  # file
    assert settings.tokens.refresh_token_idle_ttl == 14 * 24 * 3600  # default
    assert settings.server.issuer == "https://from-file.example"
    via_env_path = load_settings({"AUTHSERVER_CONFIG": str(config)})
    assert via_env_path.tokens.access_token_ttl == 600


def test_lists_dicts_and_booleans_from_the_environment() -> None:
    settings = load_settings(
        {"AUTHSERVER_TOKENS__SCOPES": "openid, read:levels, admin", "AUTHSERVER_SERVER__COOKIE_SECURE": "yes",
         "AUTHSERVER_SECURITY__TRUSTED_PROXIES": '["10.0.0.1"]', "AUTHSERVER_ADMIN__REGISTRATION_SCOPES": "openid read:levels"}
    )
    assert settings.tokens.scopes == ["openid", "read:levels", "admin"]
    assert settings.cookie_secure is True and settings.security.trusted_proxies == ["10.0.0.1"]
    assert load_settings({"AUTHSERVER_SERVER__COOKIE_SECURE": "auto"}).server.cookie_secure is None


def test_scope_lists_have_no_repeats_and_repeats_count_once_in_order(tmp_path: Path) -> None:
    defaults = Settings()
    for scopes in (defaults.tokens.scopes, defaults.admin.registration_scopes):
        assert len(scopes) == len(set(scopes)), scopes
    config = tmp_path / "authserver.toml"
    config.write_text('[tokens]\nscopes = ["openid", "read:levels", "admin", "openid", "read:levels"]\n[admin]\nregistration_scopes = ["read:levels", "openid", "read:levels"]\n')
    settings = load_settings({}, config)
    assert settings.tokens.scopes == ["openid", "read:levels", "admin"]
    assert settings.admin.registration_scopes == ["read:levels", "openid"]
    environ = {"AUTHSERVER_TOKENS__SCOPES": "admin openid admin", "AUTHSERVER_ADMIN__REGISTRATION_SCOPES": "openid openid"}
    assert load_settings(environ).tokens.scopes == ["admin", "openid"]


def test_cookie_secure_follows_an_https_issuer_unless_set() -> None:
    assert load_settings({"AUTHSERVER_SERVER__ISSUER": "https://auth.example"}).cookie_secure is True
    assert load_settings({"AUTHSERVER_SERVER__ISSUER": "http://auth.internal"}).cookie_secure is True
    relaxed = load_settings({"AUTHSERVER_SERVER__ISSUER": "https://auth.example", "AUTHSERVER_SERVER__COOKIE_SECURE": "false"})
    assert relaxed.cookie_secure is False


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"AUTHSERVER_TOKENS__ACCESS_TOKEN_TTL": "ten"}, "tokens.access_token_ttl"),
        ({"AUTHSERVER_SERVER__PORT": "70000"}, "server.port"),
        ({"AUTHSERVER_SERVER__PRODUCTION": "maybe"}, "server.production"),
        ({"AUTHSERVER_TOKENS__CODE_TTL": "61"}, "tokens.code_ttl"),
        ({"AUTHSERVER_TOKENS__CODE_TTL": "0"}, "tokens.code_ttl"),
        ({"AUTHSERVER_TOKENS__REFRESH_TOKEN_GRACE_PERIOD": "-1"}, "tokens.refresh_token_grace_period"),
        ({"AUTHSERVER_TOKENS__REFRESH_TOKEN_GRACE_PERIOD": "301"}, "tokens.refresh_token_grace_period"),
        ({"AUTHSERVER_TOKENS__SIGNING_ALG": "HS256"}, "tokens.signing_alg"),
        ({"AUTHSERVER_TOKENS__ID_TOKEN_TTL": "-1"}, "tokens.id_token_ttl"),
        ({"AUTHSERVER_TOKENS__SCOPES": "profile email"}, "tokens.scopes"),
        ({"AUTHSERVER_TOKENS__SCOPES": '["openid", "admin", "read levels"]'}, "tokens.scopes"),
        ({"AUTHSERVER_TOKENS__SCOPES": '["openid", "admin", "say\\"hi\\""]'}, "tokens.scopes"),
        ({"AUTHSERVER_TOKENS__SCOPES": '["openid", "admin", "café"]'}, "tokens.scopes"),
        ({"AUTHSERVER_TOKENS__SCOPES": '["openid", "admin", "read:levels\\n"]'}, "tokens.scopes"),
        ({"AUTHSERVER_TOKENS__SCOPES": '["openid", "admin", ""]'}, "tokens.scopes"),
        ({"AUTHSERVER_SERVER__ISSUER": "auth.example"}, "server.issuer"),
        ({"AUTHSERVER_SERVER__ISSUER": "https://auth.example/"}, "server.issuer"),
        ({"AUTHSERVER_SERVER__ISSUER": "https://auth.example?x=1"}, "server.issuer"),
        ({"AUTHSERVER_DATABASE__URL": "mysql://x"}, "database.url"),
        ({"AUTHSERVER_CACHE__URL": "memcached://x"}, "cache.url"),
        ({"AUTHSERVER_LOGIN__DEFAULT_LOCALE": "fr"}, "login.default_locale"),
        ({"AUTHSERVER_SECURITY__ENCRYPTION_KEYS": "{not json"}, "security.encryption_keys"),
        ({"AUTHSERVER_SECURITY__ENCRYPTION_KEYS": '{"a": "x"}', "AUTHSERVER_SECURITY__ACTIVE_ENCRYPTION_KEY": "b"},
         "security.active_encryption_key"),
        ({"AUTHSERVER_SERVER__WORKERS": "0"}, "server.workers"),
        ({"AUTHSERVER_SERVER__WORKERS": "4"}, "server.workers"),  # several workers need a shared cache
    ],
)
def test_bad_values_name_the_setting(environ: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names.replace(".", r"\.")):
        load_settings(environ)


def test_several_workers_with_redis_are_fine() -> None:
    assert load_settings({"AUTHSERVER_SERVER__WORKERS": "4", "AUTHSERVER_CACHE__URL": "redis://x:6379/0"}).server.workers == 4


def test_unknown_file_settings_and_bad_files_are_named(tmp_path: Path) -> None:
    config = tmp_path / "a.toml"
    config.write_text("[tokens]\naccess_ttl = 5\n")
    with pytest.raises(SettingsError, match="tokens.access_ttl"):
        load_settings({}, config)
    config.write_text("[nonsense]\n")
    with pytest.raises(SettingsError, match="nonsense"):
        load_settings({}, config)
    config.write_text("not = = toml")
    with pytest.raises(SettingsError, match=str(config)):
        load_settings({}, config)
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings({}, tmp_path / "missing.toml")


def test_production_accepts_a_safe_configuration() -> None:
    settings = load_settings(PROD_OK)
    assert settings.server.production and settings.cookie_secure


@pytest.mark.parametrize(
    ("change", "names"),
    [
        ({"AUTHSERVER_SERVER__ISSUER": "http://auth.cmipro.example"}, "server.issuer"),
        ({"AUTHSERVER_DATABASE__URL": "sqlite+aiosqlite:///./x.db"}, "database.url"),
        ({"AUTHSERVER_CACHE__URL": "memory://"}, "cache.url"),
        ({"AUTHSERVER_SECURITY__ENCRYPTION_KEYS": "{}", "AUTHSERVER_SECURITY__ACTIVE_ENCRYPTION_KEY": ""}, "security.encryption_keys"),
        ({"AUTHSERVER_SECURITY__ENCRYPTION_KEYS": '{"k1": "changeme-changeme"}'}, "security.encryption_keys.k1"),
        ({"AUTHSERVER_SERVER__COOKIE_SECURE": "false"}, "server.cookie_secure"),
    ],
)
def test_production_refuses_unsafe_choices(change: dict[str, str], names: str) -> None:
    with pytest.raises(SettingsError, match=names.replace(".", r"\.")):
        load_settings(PROD_OK | change)


def test_secrets_do_not_show_in_repr() -> None:
    settings = load_settings(PROD_OK)
    key = PROD_OK["AUTHSERVER_SECURITY__ENCRYPTION_KEYS"].split('"')[3]
    assert key not in repr(settings)


def test_replace_returns_a_changed_copy() -> None:
    settings = Settings()
    changed = settings.replace(tokens={"code_ttl": 30})
    assert changed.tokens.code_ttl == 30 and settings.tokens.code_ttl == 60
