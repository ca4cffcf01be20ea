"""DPoP (RFC 9449 §4.3, §7) for resource servers: the proof that comes with ``Authorization: DPoP <token>``.

A DPoP-bound access token (``cnf.jkt``) is accepted only with a ``DPoP`` header holding a proof, signed by
the key whose RFC 7638 thumbprint is ``cnf.jkt``, made for this request (``htm`` = method, ``htu`` = URL
without query and fragment), recently (``iat``), for this token (``ath``), and never seen before (``jti``,
in a :class:`ReplayCache`). A bound token presented as ``Bearer`` is refused.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import math
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import JWKRegistry
from joserfc.jws import JWSRegistry

from cmipro_verify._errors import InvalidDpopProof

DEFAULT_DPOP_ALGORITHMS = ("ES256", "ES384", "RS256", "PS256", "EdDSA")
MAX_PROOF_BYTES = 8192
_KEY_TYPES = {"ES": "EC", "RS": "RSA", "PS": "RSA", "Ed": "OKP"}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ReplayCache(Protocol):
    """Remembers proof ids; share one (e.g. on Redis ``SET NX EX``) between the instances of an API."""

    def add(self, key: str, ttl: float) -> bool:
        """Remember ``key`` for ``ttl`` seconds; False if it was already there (a replay)."""
        ...


class MemoryReplayCache:
    """In-process :class:`ReplayCache` (one instance of the API), bounded to ``max_entries``."""

    def __init__(self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()

    def add(self, key: str, ttl: float) -> bool:
        now = self._clock()
        with self._lock:
            while self._seen and next(iter(self._seen.values())) <= now:
                self._seen.popitem(last=False)
            expires = self._seen.get(key)
            if expires is not None and expires > now:
                return False
            self._seen[key] = now + ttl
            self._seen.move_to_end(key)
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)
            return True


class _ProofRegistry(JWSRegistry):
    max_header_length = MAX_PROOF_BYTES  # joserfc's 512 is too small for a header carrying an RSA key


def access_token_hash(token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


def normalise_url(url: str) -> str | None:
    """RFC 3986 §6.2.2-6.2.3 normal form without query and fragment, or None if not absolute http(s)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    netloc = host if port is None or port == _DEFAULT_PORTS[scheme] else f"{host}:{port}"
    return f"{scheme}://{netloc}{parts.path or '/'}"


def single_proof(dpop: str | Sequence[str] | None) -> str:
    values = [dpop] if isinstance(dpop, str) else list(dpop or [])
    if not values:
        raise InvalidDpopProof("missing DPoP proof")
    if len(values) > 1:
        raise InvalidDpopProof("more than one DPoP header")
    return values[0]


@contextlib.contextmanager
def _eddsa_allowed() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)
        yield


def _b64_json(segment: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise InvalidDpopProof("malformed DPoP proof") from None


def _is_time(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_proof(
    proof: str,
    *,
    method: str,
    url: str,
    access_token: str,
    jkt: str,
    algorithms: Collection[str],
    now: float,
    max_age: float,
    leeway: float,
    replay_cache: ReplayCache | None,
) -> None:
    """Every check of RFC 9449 §4.3 and §7.1 for a proof sent with ``access_token`` bound to ``jkt``."""
    if len(proof) > MAX_PROOF_BYTES or not proof.isascii() or proof.count(".") != 2:
        raise InvalidDpopProof("malformed DPoP proof")
    header = _b64_json(proof.split(".", 1)[0])
    if not isinstance(header, dict) or header.get("typ") != "dpop+jwt":
        raise InvalidDpopProof("DPoP proof must have typ dpop+jwt")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms or alg[:2] not in _KEY_TYPES or "crit" in header:
        raise InvalidDpopProof("DPoP proof algorithm not allowed")
    jwk = header.get("jwk")
    if not isinstance(jwk, dict) or _PRIVATE_MEMBERS.intersection(jwk) or jwk.get("kty") != _KEY_TYPES[alg[:2]]:
        raise InvalidDpopProof("DPoP proof jwk must be a public key for its algorithm")
    try:
        key = JWKRegistry.import_key(jwk)
        with _eddsa_allowed():
            payload = jws.deserialize_compact(proof, key, registry=_ProofRegistry(algorithms=[alg])).payload
        thumbprint = key.thumbprint()
        claims = json.loads(payload)
    except (JoseError, ValueError, TypeError, KeyError, UnicodeDecodeError, RecursionError):
        raise InvalidDpopProof("DPoP proof signature does not verify") from None
    if key.is_private or not isinstance(claims, dict):
        raise InvalidDpopProof("malformed DPoP proof")
    if not hmac.compare_digest(thumbprint.encode(), jkt.encode()):
        raise InvalidDpopProof("DPoP proof key is not the key the token is bound to")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > 256:
        raise InvalidDpopProof("DPoP proof needs a jti")
    if claims.get("htm") != method:
        raise InvalidDpopProof("DPoP proof htm does not match the request method")
    htu = claims.get("htu")
    if not isinstance(htu, str) or normalise_url(htu) is None or normalise_url(htu) != normalise_url(url):
        raise InvalidDpopProof("DPoP proof htu does not match the request URL")
    iat = claims.get("iat")
    if not isinstance(iat, (int, float)) or not _is_time(iat) or not now - max_age <= iat <= now + leeway:
        raise InvalidDpopProof("DPoP proof iat is outside the accepted window")
    ath = claims.get("ath")
    if not isinstance(ath, str) or not hmac.compare_digest(ath.encode(), access_token_hash(access_token).encode()):
        raise InvalidDpopProof("DPoP proof ath does not match the access token")
    if replay_cache is not None:
        seen = hashlib.sha256(f"{thumbprint}:{jti}".encode()).hexdigest()
        if not replay_cache.add(f"dpop-jti:{seen}", max_age + leeway + 1):
            raise InvalidDpopProof("DPoP proof was already used")


__all__ = ["DEFAULT_DPOP_ALGORITHMS", "MemoryReplayCache", "ReplayCache", "check_proof", "single_proof"]
