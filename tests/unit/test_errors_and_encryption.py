"""Error rendering (RFC 6749 §5.2 error_description charset) and encryption at rest (AES-256-GCM with key ids and AAD)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from authserver import errors
from authserver.keys.encryption import DecryptionError, Encryptor, generate_key, load_or_create_key_file


@pytest.mark.parametrize("description", ['say "hi"', "back\\slash", "línea", "tab\tline", "new\nline", "\x7f"])
def test_error_description_outside_the_rfc_charset_is_refused(description: str) -> None:
    with pytest.raises(ValueError, match="RFC 6749"):
        errors.InvalidRequest(description)


def test_error_body_and_defaults() -> None:
    assert errors.InvalidGrant("The code expired.").body() == {"error": "invalid_grant", "error_description": "The code expired."}
    assert errors.InvalidGrant().body() == {"error": "invalid_grant"}
    client = errors.InvalidClient()
    assert client.status_code == 401 and client.body()["error_description"] == "Client authentication failed."
    assert errors.TemporarilyUnavailable.status_code == 503 and errors.ServerError.status_code == 500


def test_every_error_class_has_a_wire_code_and_a_valid_default() -> None:
    seen = set()
    for name in errors.__all__:
        cls = getattr(errors, name)
        if cls in (errors.OAuthError, errors.AdminError, errors.RegistrationError):
            continue  # the root, and the two whose code is given per instance (below)
        instance = cls()
        assert instance.error.islower() and " " not in instance.error
        seen.add(instance.error)
        assert 400 <= instance.status_code < 600
    assert {"invalid_request", "invalid_client", "invalid_grant", "login_required", "consent_required",
            "request_not_supported", "request_uri_not_supported", "temporarily_unavailable"} <= seen


def test_admin_and_registration_errors_are_of_the_one_family() -> None:
    admin = errors.AdminError(400, "invalid_request", "The request has invalid fields.", [{"field": "name", "message": "required"}])
    assert isinstance(admin, errors.OAuthError) and admin.status_code == admin.status == 400
    assert admin.body() == {
        "error": "invalid_request", "error_description": "The request has invalid fields.",
        "errors": [{"field": "name", "message": "required"}],
    }
    refused = errors.AdminError(401, "invalid_token", 'No "token".')
    assert refused.headers["WWW-Authenticate"].startswith('Bearer realm="authserver-admin", error="invalid_token"')
    registration = errors.RegistrationError("invalid_redirect_uri", "Bad redirect URI.")
    assert isinstance(registration, errors.OAuthError) and registration.status_code == 400
    assert registration.body() == {"error": "invalid_redirect_uri", "error_description": "Bad redirect URI."}


def test_debug_is_kept_apart_from_the_description() -> None:
    error = errors.InvalidScope("Not allowed.", debug="refused ['admin'] \"quoted\"")
    assert error.body() == {"error": "invalid_scope", "error_description": "Not allowed."}


@pytest.fixture
def encryptor() -> Encryptor:
    return Encryptor({"old": generate_key(), "new": generate_key()}, "new")


def test_round_trip_and_key_id_in_the_ciphertext(encryptor: Encryptor) -> None:
    sealed = encryptor.encrypt(b"private key", aad=b"kid-1")
    assert sealed.startswith("v1.new.") and b"private key" not in sealed.encode()
    assert encryptor.decrypt(sealed, aad=b"kid-1") == b"private key"
    assert encryptor.encrypt(b"x", aad=b"a") != encryptor.encrypt(b"x", aad=b"a")  # fresh nonce


def test_older_keys_still_decrypt_and_are_flagged_for_reencryption() -> None:
    keys = {"old": generate_key(), "new": generate_key()}
    sealed = Encryptor(keys, "old").encrypt(b"secret", aad=b"row")
    rotated = Encryptor(keys, "new")
    assert rotated.decrypt(sealed, aad=b"row") == b"secret"
    assert rotated.needs_reencrypt(sealed) and not rotated.needs_reencrypt(rotated.encrypt(b"s", aad=b"row"))


def test_wrong_key_id_tampering_and_aad_mismatch_fail(encryptor: Encryptor) -> None:
    sealed = encryptor.encrypt(b"totp seed", aad=b"account-1")
    version, key_id, body = sealed.split(".")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    other = Encryptor({"new": generate_key()}, "new")  # same id, different key material
    for token, aad in [
        (f"{version}.missing.{body}", b"account-1"),
        (f"{version}.old.{body}", b"account-1"),
        (f"{version}.{key_id}.{flipped}", b"account-1"),
        (sealed, b"account-2"),
        (sealed, b""),
        (f"v2.{key_id}.{body}", b"account-1"),
        ("garbage", b"account-1"),
        (f"{version}.{key_id}.!!!!", b"account-1"),
        (f"{version}.{key_id}.A", b"account-1"),
        (f"{version}.{key_id}.", b"account-1"),
        (f"{version}.{key_id}.{body[:30]}", b"account-1"),
    ]:
        with pytest.raises(DecryptionError):
            encryptor.decrypt(token, aad=aad)
    with pytest.raises(DecryptionError):
        other.decrypt(sealed, aad=b"account-1")


@pytest.mark.parametrize(("keys", "active"), [({"a": "c2hvcnQ"}, "a"), ({"a.b": generate_key()}, "a.b"), ({"a": generate_key()}, "b")])
def test_bad_key_configuration_is_refused(keys: dict[str, str], active: str) -> None:
    with pytest.raises(ValueError):
        Encryptor(keys, active)


def test_processes_starting_together_share_one_key_file(tmp_path: Path) -> None:
    """The embedded default's key file may be created by several processes at once (instances started together):
    one key wins, and nobody fails or reads a half-written file."""
    for round_no in range(20):
        path = tmp_path / f"secrets-{round_no}.json"
        barrier = threading.Barrier(8)

        def create(_: int, barrier: threading.Barrier = barrier, path: Path = path) -> tuple[dict[str, str], str]:
            barrier.wait()
            return load_or_create_key_file(path)

        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(create, range(8)))
        assert all(result == results[0] for result in results)
        assert path.stat().st_mode & 0o777 == 0o600
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
