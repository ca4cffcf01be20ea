"""The two JOSE steps every document we check shares (access tokens and the revocation feed): read the
header without trusting it, then verify the signature with the one key and algorithm the JWKS binds."""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import warnings
from collections.abc import Collection, Iterator
from typing import Any, TypeGuard

from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning

from cmipro_verify._errors import InvalidToken
from cmipro_verify._jwks import VerificationKey

MAX_TOKEN_BYTES = 16 * 1024


@contextlib.contextmanager
def _eddsa_allowed() -> Iterator[None]:
    # joserfc warns that RFC 9864 deprecates the name "EdDSA"; the authorization server still uses it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)
        yield


def _b64_json(segment: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidToken("malformed token") from None


def unverified_header(token: str, *, algorithms: Collection[str], typ: str | None, max_bytes: int = MAX_TOKEN_BYTES) -> dict[str, Any]:
    """The protected header, checked before any cryptography: allowed ``alg``, ``typ``, a ``kid``, no ``crit``."""
    if not isinstance(token, str) or len(token) > max_bytes or token.count(".") != 2:
        raise InvalidToken("malformed token")
    header = _b64_json(token.split(".", 1)[0])
    if not isinstance(header, dict):
        raise InvalidToken("malformed token")
    if header.get("alg") not in algorithms:
        raise InvalidToken("signature algorithm not allowed")
    if "crit" in header:
        raise InvalidToken("unsupported critical header")
    if typ is not None:
        given = header.get("typ")
        if not isinstance(given, str) or given.lower().removeprefix("application/") != typ.lower():
            raise InvalidToken(f"token type must be {typ}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > 256:
        raise InvalidToken("missing key id")
    return header


def verified_claims(token: str, header: dict[str, Any], key: VerificationKey) -> dict[str, Any]:
    """The JSON claims of ``token`` if its signature verifies with ``key`` (and only with ``key.alg``)."""
    if header["alg"] != key.alg:
        raise InvalidToken("signature algorithm does not match the key")
    try:
        with _eddsa_allowed():
            payload = jws.deserialize_compact(token, key.key, algorithms=[key.alg]).payload
        claims = json.loads(payload)
    except (JoseError, ValueError, TypeError, UnicodeDecodeError):
        raise InvalidToken("signature does not verify") from None
    if not isinstance(claims, dict):
        raise InvalidToken("malformed claims")
    return claims


def is_time(value: Any) -> TypeGuard[float]:
    """A NumericDate (RFC 7519 §2): a finite number, not a boolean (json.loads accepts NaN and Infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
