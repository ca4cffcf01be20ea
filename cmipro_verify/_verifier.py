"""Access-token verification (RFC 9068 §4, RFC 8725): signature with an allow-listed algorithm bound to
the key, ``typ``, ``iss``, ``aud``, ``exp``/``nbf``/``iat`` with leeway, then revocation (the server's
signed revocation feed, ``cmipro_verify._revocations``).

The ``alg`` of the token must be allowed *and* equal to the ``alg`` of the JWK its ``kid`` names, so
``none``, HMAC with a public key as secret (CVE-2024-37568 and its kin) and key/algorithm confusion
are refused before any cryptography runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import httpx

from cmipro_verify._claims import Claims
from cmipro_verify._dpop import (
    DEFAULT_DPOP_ALGORITHMS,
    MemoryReplayCache,
    ReplayCache,
    check_proof,
    single_proof,
)
from cmipro_verify._errors import InvalidDpopProof, InvalidToken, TokenError
from cmipro_verify._jwks import ALGORITHM_KEYS, JWKSCache, VerificationKey
from cmipro_verify._jws import MAX_TOKEN_BYTES, is_time, unverified_header, verified_claims
from cmipro_verify._mtls import Certificate, check_certificate_binding
from cmipro_verify._revocations import OnUnavailable, RevocationFeed

DEFAULT_ALGORITHMS = ("ES256", "RS256", "EdDSA")
__all__ = ["DEFAULT_ALGORITHMS", "MAX_TOKEN_BYTES", "Verifier", "bearer_token"]


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (RFC 6750 §2.1), or :class:`InvalidToken`."""
    if not authorization:
        raise InvalidToken("missing bearer token")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise InvalidToken("expected Authorization: Bearer <token>")
    return token


def _scheme_and_token(authorization: str | None) -> tuple[str, str]:
    """``("bearer" | "dpop", token)`` of an Authorization header (RFC 6750 §2.1, RFC 9449 §7.1)."""
    if authorization and authorization.strip().partition(" ")[0].lower() == "dpop":
        token = authorization.strip().partition(" ")[2].strip()
        if not token or " " in token:
            raise InvalidToken("expected Authorization: DPoP <token>")
        return "dpop", token
    return "bearer", bearer_token(authorization)


def _dpop_jkt(claims: Claims) -> str | None:
    cnf = claims.get("cnf")
    jkt = cnf.get("jkt") if isinstance(cnf, dict) else None
    if cnf is not None and isinstance(cnf, dict) and "jkt" in cnf and not isinstance(jkt, str):
        raise InvalidToken("malformed cnf claim")
    return jkt if isinstance(jkt, str) else None


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
    :param revocation_check: refuse revoked tokens using the server's signed revocation feed (default on).
    :param revocation_url: default ``{issuer}/revocations`` (``cmipro_revocation_feed_uri`` in discovery).
    :param revocation_freshness: seconds a fetched feed is used before it is fetched again; a revocation
        reaches this verifier within about this long (docs/verifying-tokens.md).
    :param revocation_max_stale: how long past its freshness the last good feed keeps serving while the
        server is unreachable.
    :param on_revocation_unavailable: after that, ``"closed"`` refuses every token (503,
        :class:`RevocationUnavailable`), ``"open"`` accepts valid tokens unchecked and logs a warning.
    :param dpop_algorithms: algorithms a DPoP proof may use (RFC 9449; :meth:`verify_request`).
    :param dpop_max_age: seconds a DPoP proof's ``iat`` may be old (``leeway`` ahead is allowed too).
    :param dpop_replay_cache: where proof ids are remembered (default: in this process; give a shared one
        when the API runs on several instances).
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
        revocation_check: bool = True,
        revocation_url: str | None = None,
        revocation_freshness: float = 30.0,
        revocation_max_stale: float = 300.0,
        on_revocation_unavailable: OnUnavailable = "closed",
        revocations: RevocationFeed | None = None,
        dpop_algorithms: Collection[str] = DEFAULT_DPOP_ALGORITHMS,
        dpop_max_age: float = 60.0,
        dpop_replay_cache: ReplayCache | None = None,
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
        self.dpop_algorithms = tuple(dpop_algorithms)
        self.dpop_max_age = dpop_max_age
        self.dpop_replay_cache: ReplayCache = dpop_replay_cache or MemoryReplayCache()
        self.revocations = revocations
        if revocations is None and revocation_check:
            self.revocations = RevocationFeed(
                revocation_url or f"{issuer.rstrip('/')}/revocations",
                issuer=issuer,
                jwks=self.jwks,
                algorithms=self.algorithms,
                freshness=revocation_freshness,
                max_stale=revocation_max_stale,
                on_unavailable=on_revocation_unavailable,
                leeway=leeway,
                timeout=timeout,
                clock=clock,
                http_client=http_client,
                async_http_client=async_http_client,
            )

    # -- public API --------------------------------------------------------------------------------

    def verify(self, token: str, *, client_certificate: Certificate | None = None) -> Claims:
        """The claims of a valid, unrevoked bearer token, else :class:`InvalidToken` (or a 503 :class:`Unavailable`).

        ``client_certificate``: the TLS client certificate of the request (DER bytes or PEM), if any; a
        token bound to a certificate (``cnf.x5t#S256``, RFC 8705) is refused unless it is this one.
        A token bound to a DPoP key (``cnf.jkt``) is refused here: use :meth:`verify_request`."""
        return self._refuse_bound(self._verify_token(token, client_certificate))

    async def verify_async(self, token: str, *, client_certificate: Certificate | None = None) -> Claims:
        return self._refuse_bound(await self._verify_token_async(token, client_certificate))

    def verify_request(
        self,
        authorization: str | None,
        *,
        dpop: str | Sequence[str] | None,
        method: str,
        url: str,
        client_certificate: Certificate | None = None,
    ) -> Claims:
        """Verify a request's token and, for ``Authorization: DPoP``, its proof (RFC 9449 §7).

        ``dpop`` is the request's ``DPoP`` header value(s); ``url`` the URL the client called, built from this
        API's configured public base URL and the request path (not from the Host header).
        A bound token as ``Bearer``, an unbound one as ``DPoP``, or a bad proof are refused (401).
        ``client_certificate`` as for :meth:`verify`."""
        scheme, token = _scheme_and_token(authorization)
        if scheme == "bearer":
            return self.verify(token, client_certificate=client_certificate)
        try:
            claims = self._verify_token(token, client_certificate)
        except TokenError as error:
            raise error.as_dpop(self.dpop_algorithms) from None
        return self._check_dpop(claims, token, dpop, method, url)

    async def verify_request_async(
        self,
        authorization: str | None,
        *,
        dpop: str | Sequence[str] | None,
        method: str,
        url: str,
        client_certificate: Certificate | None = None,
    ) -> Claims:
        scheme, token = _scheme_and_token(authorization)
        if scheme == "bearer":
            return await self.verify_async(token, client_certificate=client_certificate)
        try:
            claims = await self._verify_token_async(token, client_certificate)
        except TokenError as error:
            raise error.as_dpop(self.dpop_algorithms) from None
        return self._check_dpop(claims, token, dpop, method, url)

    def verify_authorization(self, authorization: str | None, *, client_certificate: Certificate | None = None) -> Claims:
        """Verify the token of an ``Authorization`` header value."""
        return self.verify(bearer_token(authorization), client_certificate=client_certificate)

    async def verify_authorization_async(
        self, authorization: str | None, *, client_certificate: Certificate | None = None
    ) -> Claims:
        return await self.verify_async(bearer_token(authorization), client_certificate=client_certificate)

    def close(self) -> None:
        self.jwks.close()
        if self.revocations is not None:
            self.revocations.close()

    async def aclose(self) -> None:
        await self.jwks.aclose()
        if self.revocations is not None:
            await self.revocations.aclose()

    # -- steps -------------------------------------------------------------------------------------

    def _verify_token(self, token: str, client_certificate: Certificate | None = None) -> Claims:
        header = self._header(token)
        claims = self._check(token, header, self.jwks.get_key(header["kid"]))
        check_certificate_binding(claims, client_certificate)
        if self.revocations is not None:
            self.revocations.check(claims)
        return claims

    async def _verify_token_async(self, token: str, client_certificate: Certificate | None = None) -> Claims:
        header = self._header(token)
        claims = self._check(token, header, await self.jwks.get_key_async(header["kid"]))
        check_certificate_binding(claims, client_certificate)
        if self.revocations is not None:
            await self.revocations.check_async(claims)
        return claims

    def _refuse_bound(self, claims: Claims) -> Claims:
        if _dpop_jkt(claims) is not None:
            raise InvalidToken("DPoP-bound token presented as a bearer token").as_dpop(self.dpop_algorithms)
        return claims

    def _check_dpop(self, claims: Claims, token: str, dpop: str | Sequence[str] | None, method: str, url: str) -> Claims:
        jkt = _dpop_jkt(claims)
        if jkt is None:
            raise InvalidToken("token is not DPoP-bound").as_dpop(self.dpop_algorithms)
        try:
            check_proof(
                single_proof(dpop), method=method, url=url, access_token=token, jkt=jkt,
                algorithms=self.dpop_algorithms, now=self._clock(), max_age=self.dpop_max_age,
                leeway=min(self.leeway, 10.0), replay_cache=self.dpop_replay_cache,
            )
        except InvalidDpopProof as error:
            raise error.as_dpop(self.dpop_algorithms) from None
        return claims

    def _header(self, token: str) -> dict[str, Any]:
        return unverified_header(token, algorithms=self.algorithms, typ=self.token_type)

    def _check(self, token: str, header: dict[str, Any], key: VerificationKey) -> Claims:
        claims = verified_claims(token, header, key)
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
        if not is_time(exp) or now >= exp + self.leeway:
            raise InvalidToken("token expired")
        if nbf is not None and (not is_time(nbf) or now + self.leeway < nbf):
            raise InvalidToken("token not yet valid")
        if not is_time(iat) or iat > now + self.leeway:
            raise InvalidToken("token issued in the future")

