"""Access-token verification (RFC 9068 §4, RFC 8725): signature with an allow-listed algorithm bound to
the key, ``typ``, ``iss``, ``aud``, ``exp``/``nbf``/``iat`` with leeway.

The ``alg`` of the token must be allowed *and* equal to the ``alg`` of the JWK its ``kid`` names, so
``none``, HMAC with a public key as secret (CVE-2024-37568 and its kin) and key/algorithm confusion
are refused before any cryptography runs.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import math
import time
import warnings
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Any, TypeGuard

import httpx
from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning

from cmipro_verify._claims import Claims
from cmipro_verify._errors import InvalidToken
from cmipro_verify._jwks import ALGORITHM_KEYS, JWKSCache, VerificationKey

DEFAULT_ALGORITHMS = ("ES256", "RS256", "EdDSA")
MAX_TOKEN_BYTES = 16 * 1024


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (RFC 6750 §2.1), or :class:`InvalidToken`."""
    if not authorization:
        raise InvalidToken("missing bearer token")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise InvalidToken("expected Authorization: Bearer <token>")
    return token


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


class Verifier:
    """Verifies access tokens of one issuer for one API (audience). Thread-safe; reuse one instance.

    :param issuer: the authorization server's issuer, exactly as in its discovery document.
    :param audience: the identifier(s) of this API; a token must name at least one of them in ``aud``.
    :param jwks_url: default ``{issuer}/jwks`` (the ``jwks_uri`` of the discovery document).
    :param algorithms: allowed signature algorithms (asymmetric only).
    :param leeway: seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat`` (keep ≤ 60).
    :param token_type: required ``typ`` header; ``"at+jwt"`` for access tokens, ``"JWT"`` for ID tokens,
        ``None`` to skip the check.
    :param clock: seconds since the epoch; injectable for tests.
    """

    def __init__(
        self,
        *,
        issuer: str,
        audience: str | Collection[str],
        jwks_url: str | None = None,
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
        leeway: float = 60.0,
        token_type: str | None = "at+jwt",
        clock: Callable[[], float] = time.time,
        refetch_cooldown: float = 30.0,
        max_stale: float = 7 * 24 * 3600.0,
        timeout: float = 5.0,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        jwks: JWKSCache | None = None,
    ) -> None:
        unknown = set(algorithms) - set(ALGORITHM_KEYS)
        if unknown or not algorithms:
            raise ValueError(f"unsupported algorithms {sorted(unknown)}: only {sorted(ALGORITHM_KEYS)}")
        self.issuer = issuer
        self.audiences = frozenset([audience] if isinstance(audience, str) else audience)
        if not self.audiences:
            raise ValueError("audience is required (RFC 9068 §4)")
        self.algorithms = frozenset(algorithms)
        self.leeway = leeway
        self.token_type = token_type
        self._clock = clock
        self.jwks = jwks or JWKSCache(
            jwks_url or f"{issuer.rstrip('/')}/jwks",
            algorithms=self.algorithms,
            refetch_cooldown=refetch_cooldown,
            max_stale=max_stale,
            timeout=timeout,
            clock=clock,
            http_client=http_client,
            async_http_client=async_http_client,
        )

    # -- public API --------------------------------------------------------------------------------

    def verify(self, token: str) -> Claims:
        """The claims of a valid token, else :class:`InvalidToken` (or :class:`JWKSUnavailable`)."""
        header = self._header(token)
        return self._check(token, header, self.jwks.get_key(header["kid"]))

    async def verify_async(self, token: str) -> Claims:
        header = self._header(token)
        return self._check(token, header, await self.jwks.get_key_async(header["kid"]))

    def verify_authorization(self, authorization: str | None) -> Claims:
        """Verify the token of an ``Authorization`` header value."""
        return self.verify(bearer_token(authorization))

    async def verify_authorization_async(self, authorization: str | None) -> Claims:
        return await self.verify_async(bearer_token(authorization))

    def close(self) -> None:
        self.jwks.close()

    async def aclose(self) -> None:
        await self.jwks.aclose()

    # -- steps -------------------------------------------------------------------------------------

    def _header(self, token: str) -> dict[str, Any]:
        if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
            raise InvalidToken("malformed token")
        header = _b64_json(token.split(".", 1)[0])
        if not isinstance(header, dict):
            raise InvalidToken("malformed token")
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise InvalidToken("signature algorithm not allowed")
        if "crit" in header:
            raise InvalidToken("unsupported critical header")
        if self.token_type is not None:
            typ = header.get("typ")
            if not isinstance(typ, str) or typ.lower().removeprefix("application/") != self.token_type.lower():
                raise InvalidToken(f"token type must be {self.token_type}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid or len(kid) > 256:
            raise InvalidToken("missing key id")
        return header

    def _check(self, token: str, header: Mapping[str, Any], key: VerificationKey) -> Claims:
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
        self._check_claims(claims)
        return Claims(claims, header)

    def _check_claims(self, claims: Mapping[str, Any]) -> None:
        if claims.get("iss") != self.issuer:
            raise InvalidToken("wrong issuer")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not self.audiences.intersection(a for a in audiences if isinstance(a, str)):
            raise InvalidToken("wrong audience")
        now = self._clock()
        exp, nbf, iat = claims.get("exp"), claims.get("nbf"), claims.get("iat")
        if not _is_time(exp) or now >= exp + self.leeway:
            raise InvalidToken("token expired")
        if nbf is not None and (not _is_time(nbf) or now + self.leeway < nbf):
            raise InvalidToken("token not yet valid")
        if not _is_time(iat) or iat > now + self.leeway:
            raise InvalidToken("token issued in the future")


def _is_time(value: Any) -> TypeGuard[float]:
    """A NumericDate (RFC 7519 §2): a finite number, not a boolean (json.loads accepts NaN and Infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

