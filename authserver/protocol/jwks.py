"""A client's public JWK Set (RFC 7591 ``jwks``, RFC 7517 §5): what we accept and how it is imported.

Used for registration (admin API, CLI, RFC 7591) and for sets fetched from a ``jwks_uri``. Only public
asymmetric keys, each with a distinct ``kid``: private members (``d``, ``p``, ``q``, …) and symmetric keys
(``oct``, whose ``k`` is the secret itself) are refused, as the conformance suite checks of a JWKS.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

MAX_KEYS = 10
MAX_JWKS_BYTES = 16 * 1024
MAX_KID = 200
PUBLIC_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})
# RFC 7518 §6.2.2, §6.3.2, RFC 8037 §2: the members that carry private (or symmetric) key material.
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
MIN_RSA_BITS = 2048


class JwksError(ValueError):
    """The value is not an acceptable public JWK Set; the message says why (safe to show)."""


def import_public_key_set(value: Any) -> KeySet:
    """The JWK Set as joserfc keys, or :class:`JwksError`."""
    if not isinstance(value, dict) or not isinstance(value.get("keys"), list):
        raise JwksError("must be a JWK Set: an object with a keys list")
    if len(json.dumps(value, separators=(",", ":"))) > MAX_JWKS_BYTES:
        raise JwksError(f"must be at most {MAX_JWKS_BYTES} bytes")
    keys = value["keys"]
    if not 1 <= len(keys) <= MAX_KEYS:
        raise JwksError(f"must hold 1-{MAX_KEYS} keys")
    kids: set[str] = set()
    for index, key in enumerate(keys):
        if not isinstance(key, dict):
            raise JwksError(f"keys[{index}] must be an object")
        if key.get("kty") not in PUBLIC_KEY_TYPES:
            raise JwksError(f"keys[{index}]: kty must be one of RSA, EC, OKP (public keys only)")
        if PRIVATE_MEMBERS & set(key):
            raise JwksError(f"keys[{index}] holds private key material")
        kid = key.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= MAX_KID:
            raise JwksError(f"keys[{index}] needs a kid of 1-{MAX_KID} characters")
        if kid in kids:
            raise JwksError(f"keys[{index}]: kid {kid[:40]!r} is used twice")
        kids.add(kid)
        if key.get("use", "sig") != "sig":
            raise JwksError(f"keys[{index}]: use must be sig")
        if key["kty"] == "RSA" and _rsa_bits(key.get("n")) < MIN_RSA_BITS:
            raise JwksError(f"keys[{index}]: RSA keys need at least {MIN_RSA_BITS} bits")
    try:
        key_set = KeySet.import_key_set(value)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError):
        raise JwksError("holds a key that cannot be read") from None
    return key_set


def _rsa_bits(modulus: Any) -> int:
    if not isinstance(modulus, str) or len(modulus) > 2048:
        return 0
    try:
        raw = base64.urlsafe_b64decode(modulus + "=" * (-len(modulus) % 4))
    except ValueError:
        return 0
    return int.from_bytes(raw, "big").bit_length()


def jwks_problem(value: Any) -> str | None:
    try:
        import_public_key_set(value)
    except JwksError as error:
        return str(error)
    return None


def jwks_uri_problem(uri: str, *, https_only: bool) -> str | None:
    """A ``jwks_uri`` we would fetch: absolute https (http only outside production), no credentials or fragment."""
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError:
        return "must be an absolute https URL"
    allowed = {"https"} if https_only else {"https", "http"}
    if parts.scheme not in allowed or not parts.hostname:
        return "must be an absolute https URL"
    if parts.username is not None or parts.password is not None or parts.fragment:
        return "must not carry credentials or a fragment"
    if len(uri) > 2000 or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in uri):
        return "must be at most 2000 printable characters"
    return None
