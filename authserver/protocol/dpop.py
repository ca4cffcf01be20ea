"""DPoP proofs (RFC 9449 §4.2-4.3): parse and check one ``DPoP`` header, without any state.

What is checked here, cheapest first (§4.3): one header only, bounded size, three base64url parts; the
header's ``typ`` is ``dpop+jwt``, ``alg`` an allow-listed asymmetric algorithm, ``jwk`` a public key (no
private members, no symmetric key) of the algorithm's type; the signature verifies with that key; the
claims hold a ``jti``, ``htm`` equal to the request's method, ``htu`` equal to the request's URL (query and
fragment ignored, syntax-normalised per RFC 3986 §6.2.2-6.2.3), an ``iat`` inside the window and, when an
access token comes with the proof (at a resource), ``ath`` = base64url(SHA-256(token)).

What needs state (``jti`` single use, the server nonce) is ``authserver/tokens/dpop.py``. Everything here
raises :class:`ProofError` with a short ASCII reason; the caller turns it into ``invalid_dpop_proof``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import math
import warnings
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import JWKRegistry
from joserfc.jws import JWSRegistry

PROOF_TYPE = "dpop+jwt"
# The asymmetric algorithms a proof may use (the ``dpop_signing_alg_values_supported`` choices).
KNOWN_ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"})
# The key type each algorithm needs (a proof whose jwk does not fit its alg is refused before verifying).
_KEY_TYPES = {"ES": "EC", "RS": "RSA", "PS": "RSA", "Ed": "OKP"}
# Members that only a private key has (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2) and a symmetric key's.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
MAX_JTI_CHARS = 256
MAX_NONCE_CHARS = 256
DEFAULT_PORTS = {"http": 80, "https": 443}


class _ProofRegistry(JWSRegistry):
    # joserfc's default limit (512 bytes) is too small for a header carrying an RSA key; the whole proof is
    # bounded by ``max_bytes`` before this runs.
    max_header_length = 8192


class ProofError(Exception):
    """The proof is missing, malformed or does not fit the request; ``reason`` is safe to send (ASCII)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Proof:
    """A proof that passed every stateless check."""

    jkt: str  # RFC 7638 SHA-256 thumbprint of the proof's key (what a bound token's cnf.jkt holds)
    jti: str
    iat: float
    nonce: str | None


def single_header(values: list[str]) -> str | None:
    """The one ``DPoP`` header of a request, None when absent; two or more are refused (§4.3 check 1)."""
    if not values:
        return None
    if len(values) > 1:
        raise ProofError("Send exactly one DPoP header.")
    return values[0]


def access_token_hash(token: str) -> str:
    """``ath`` (§4.2): base64url (no padding) of the SHA-256 of the ASCII access token."""
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode("ascii", "replace")).digest()).rstrip(b"=").decode()


def normalise_url(url: str) -> str | None:
    """The URL without query and fragment, scheme and host lower-cased and the default port left out
    (RFC 3986 §6.2.2-6.2.3), for the ``htu`` comparison; None if it is not an absolute http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port is None or port == DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}"


@contextlib.contextmanager
def _eddsa_allowed() -> Iterator[None]:
    # joserfc warns that RFC 9864 deprecates the name "EdDSA"; clients still send it.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)
        yield


def _b64_json(segment: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise ProofError("The DPoP proof is not a JWT.") from None


def _is_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_proof(
    proof: str,
    *,
    method: str,
    url: str,
    algorithms: Collection[str],
    now: float,
    max_age: float,
    leeway: float,
    max_bytes: int,
    access_token: str | None = None,
) -> Proof:
    """Every stateless check of RFC 9449 §4.3 (module docstring), or :class:`ProofError`."""
    if len(proof) > max_bytes or not proof.isascii() or proof.count(".") != 2:
        raise ProofError("The DPoP proof is not a JWT.")
    header = _b64_json(proof.split(".", 1)[0])
    if not isinstance(header, dict):
        raise ProofError("The DPoP proof is not a JWT.")
    if header.get("typ") != PROOF_TYPE:
        raise ProofError("The DPoP proof must have typ dpop+jwt.")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms or alg not in KNOWN_ALGORITHMS:
        raise ProofError("The DPoP proof's signature algorithm is not supported.")
    if "crit" in header:
        raise ProofError("The DPoP proof has an unsupported critical header.")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or _PRIVATE_MEMBERS.intersection(jwk) or jwk.get("kty") != _KEY_TYPES[alg[:2]]:
        raise ProofError("The DPoP proof's jwk must be a public key for its algorithm.")
    try:
        key = JWKRegistry.import_key(jwk)
        if key.is_private:
            raise ProofError("The DPoP proof's jwk must be a public key for its algorithm.")
        with _eddsa_allowed():
            payload = jws.deserialize_compact(proof, key, registry=_ProofRegistry(algorithms=[alg])).payload
        thumbprint = key.thumbprint()
    except ProofError:
        raise
    except (JoseError, ValueError, TypeError, KeyError, UnicodeDecodeError):
        raise ProofError("The DPoP proof's signature does not verify.") from None
    try:
        claims = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ProofError("The DPoP proof's claims are not JSON.") from None
    if not isinstance(claims, dict):
        raise ProofError("The DPoP proof's claims are not JSON.")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_CHARS:
        raise ProofError("The DPoP proof needs a jti.")
    if claims.get("htm") != method:
        raise ProofError("The DPoP proof's htm does not match the request method.")
    htu = claims.get("htu")
    if not isinstance(htu, str) or normalise_url(htu) is None or normalise_url(htu) != normalise_url(url):
        raise ProofError("The DPoP proof's htu does not match the request URL.")
    iat = claims.get("iat")
    if not _is_time(iat):
        raise ProofError("The DPoP proof needs an iat.")
    assert isinstance(iat, (int, float))
    if iat > now + leeway:
        raise ProofError("The DPoP proof was issued in the future.")
    if iat < now - max_age:
        raise ProofError("The DPoP proof is too old.")
    if access_token is not None:
        ath = claims.get("ath")
        if not isinstance(ath, str) or not hmac.compare_digest(ath.encode(), access_token_hash(access_token).encode()):
            raise ProofError("The DPoP proof's ath does not match the access token.")
    nonce = claims.get("nonce")
    if nonce is not None and (not isinstance(nonce, str) or len(nonce) > MAX_NONCE_CHARS):
        raise ProofError("The DPoP proof's nonce is malformed.")
    return Proof(jkt=thumbprint, jti=jti, iat=float(iat), nonce=nonce)


__all__ = ["KNOWN_ALGORITHMS", "PROOF_TYPE", "Proof", "ProofError", "access_token_hash", "check_proof", "normalise_url", "single_header"]
