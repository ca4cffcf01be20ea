"""Encryption at rest for private signing keys and TOTP secrets (AES-256-GCM from `cryptography`).

A ciphertext reads ``v1.<key id>.<base64url(nonce || ciphertext+tag)>``: the key id lets the
key-encryption key rotate without losing what older keys encrypted. Associated data binds a ciphertext
to its row (a TOTP secret copied onto another account does not decrypt).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class DecryptionError(Exception):
    """The ciphertext is damaged, bound to other data, or its key is not configured."""


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Encryptor:
    def __init__(self, keys: Mapping[str, str], active_key_id: str) -> None:
        self._keys: dict[str, AESGCM] = {}
        self._raw: dict[str, bytes] = {}
        for key_id, encoded in keys.items():
            if "." in key_id or not key_id:
                raise ValueError(f"encryption key id {key_id!r}: no dots, not empty")
            raw = _b64d(str(encoded))
            if len(raw) != 32:
                raise ValueError(f"encryption key {key_id!r}: must be 32 bytes, base64url encoded")
            self._keys[key_id] = AESGCM(raw)
            self._raw[key_id] = raw
        if active_key_id not in self._keys:
            raise ValueError(f"active encryption key {active_key_id!r} is not configured")
        self.active_key_id = active_key_id

    def encrypt(self, plaintext: bytes, *, aad: bytes) -> str:
        nonce = os.urandom(12)
        sealed = self._keys[self.active_key_id].encrypt(nonce, plaintext, aad)
        return f"v1.{self.active_key_id}.{_b64e(nonce + sealed)}"

    def decrypt(self, token: str, *, aad: bytes) -> bytes:
        try:
            version, key_id, body = token.split(".", 2)
        except ValueError:
            raise DecryptionError("malformed ciphertext") from None
        if version != "v1" or key_id not in self._keys:
            raise DecryptionError(f"no key {key_id!r} to decrypt with")
        try:
            raw = _b64d(body)
        except ValueError:  # binascii.Error: not base64url
            raise DecryptionError("malformed ciphertext") from None
        if len(raw) < 12 + 16:  # nonce and tag at least
            raise DecryptionError("malformed ciphertext")
        try:
            return self._keys[key_id].decrypt(raw[:12], raw[12:], aad)
        except InvalidTag:
            raise DecryptionError("ciphertext does not authenticate") from None

    def derive_key(self, purpose: bytes) -> bytes:
        """A 32-byte key for another purpose (HKDF-SHA256 over the active key, RFC 5869), the same on every
        instance that shares the key configuration (e.g. the DPoP nonce's MAC key)."""
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"authserver/" + purpose).derive(
            self._raw[self.active_key_id]
        )

    def needs_reencrypt(self, token: str) -> bool:
        return not token.startswith(f"v1.{self.active_key_id}.")


def generate_key() -> str:
    return _b64e(secrets.token_bytes(32))


def load_or_create_key_file(path: str | Path) -> tuple[dict[str, str], str]:
    """The embedded default's key-encryption key: generated once into a 0600 file beside the database.

    Instances started together may all find the file missing: each writes a complete file under a name of
    its own and hard-links it into place, which never replaces an existing file, so the first one wins and
    every process then reads that one (never a half-written file).
    """
    path = Path(path)
    if not path.exists():
        key_id = "k" + secrets.token_hex(4)
        draft = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"keys": {key_id: generate_key()}, "active": key_id}, handle)
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            draft.unlink()
    data = json.loads(path.read_text(encoding="utf-8"))
    return dict(data["keys"]), str(data["active"])
