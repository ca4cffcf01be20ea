"""The `keys` settings group: defaults and the timing rule publish_ahead ≥ jwks_max_age + reload_interval."""

from __future__ import annotations

import pytest

from authserver.keys.rotation import configured_algorithms, policy_from_settings
from authserver.settings import SettingsError, load_settings


def test_defaults_are_safe() -> None:
    settings = load_settings({})
    keys = settings.keys
    assert keys.publish_ahead >= settings.tokens.jwks_max_age + keys.reload_interval
    assert configured_algorithms(settings) == ("ES256", "RS256")
    policy = policy_from_settings(settings, longest_client_token_ttl=7200)
    # Retired keys outlive the longest token (a client's 2 h here) plus the reload interval and leeway.
    assert policy.retain_after_retire.total_seconds() == keys.reload_interval + 7200 + keys.retire_leeway


def test_the_default_signing_algorithm_always_gets_keys() -> None:
    settings = load_settings({"AUTHSERVER_TOKENS__SIGNING_ALG": "EdDSA", "AUTHSERVER_KEYS__ALGORITHMS": "RS256"})
    assert configured_algorithms(settings) == ("EdDSA", "RS256")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AUTHSERVER_KEYS__PUBLISH_AHEAD": "320"}, "keys.publish_ahead"),
        ({"AUTHSERVER_TOKENS__JWKS_MAX_AGE": "20000"}, "keys.publish_ahead"),
        ({"AUTHSERVER_KEYS__ALGORITHMS": "HS256"}, "keys.algorithms"),
        ({"AUTHSERVER_KEYS__ALGORITHMS": "[]"}, "keys.algorithms"),
        ({"AUTHSERVER_KEYS__RELOAD_INTERVAL": "0"}, "keys.reload_interval"),
        ({"AUTHSERVER_KEYS__RETIRE_LEEWAY": "-1"}, "keys.retire_leeway"),
    ],
)
def test_unsafe_key_timings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(env)


def test_discovery_advertises_only_algorithms_that_have_keys() -> None:
    from authserver.endpoints.discovery import build_metadata

    assert build_metadata(load_settings({}), [])["id_token_signing_alg_values_supported"] == ["ES256", "RS256"]
    with_eddsa = load_settings({"AUTHSERVER_KEYS__ALGORITHMS": "ES256,RS256,EdDSA"})
    assert build_metadata(with_eddsa, [])["id_token_signing_alg_values_supported"] == ["ES256", "RS256", "EdDSA"]
