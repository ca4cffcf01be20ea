"""JWT access tokens (RFC 9068) and ID tokens (OIDC Core §2), signed with joserfc.

Verification always names its algorithms (RFC 8725 §3.1; CVE-2024-37568) and the token type.
"""

from __future__ import annotations

import contextlib
import secrets
import warnings
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from authserver.clock import Clock
from authserver.keys.keystore import SUPPORTED_ALGS, KeyStore

ACCESS_TOKEN_TYP = "at+jwt"
# The signed revocation feed (authserver/tokens/feed.py): a type of its own, so neither an access token nor
# an ID token can stand in for a feed, nor a feed for either.
REVOCATION_LIST_TYP = "revocation-list+jwt"
# Access tokens whose signature check is remembered (see TokenSigner.verify_access_token).
VERIFIED_CACHE = 2048


@contextlib.contextmanager
def eddsa_allowed() -> Iterator[None]:
    """joserfc warns that RFC 9864 deprecates the name "EdDSA"; we keep it because verifiers (PyJWT, AWS) know it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)
        yield


@dataclass(frozen=True)
class IssuedAccessToken:
    token: str
    jti: str
    expires_in: int
    claims: dict[str, Any]


class TokenSigner:
    def __init__(self, keystore: KeyStore, *, issuer: str, clock: Clock, default_alg: str) -> None:
        self._keys = keystore
        self.issuer = issuer
        self._clock = clock
        self.default_alg = default_alg
        self._verified: dict[str, tuple[KeySet, dict[str, Any]]] = {}
        # Built once: joserfc would otherwise build a registry (a copy of its header table) per call.
        self._signing_registries = {alg: JWSRegistry(algorithms=[alg]) for alg in SUPPORTED_ALGS}
        self._verifying_registry = JWSRegistry(algorithms=list(SUPPORTED_ALGS))

    def _sign(self, claims: Mapping[str, Any], *, alg: str, typ: str) -> str:
        key = self._keys.signing_key(alg)
        header = {"alg": alg, "typ": typ, "kid": key.kid}
        registry = self._signing_registries.get(alg) or JWSRegistry(algorithms=[alg])
        if alg != "EdDSA":
            return jwt.encode(header, dict(claims), key.key, registry=registry)
        with eddsa_allowed():
            return jwt.encode(header, dict(claims), key.key, registry=registry)

    def access_token(
        self,
        *,
        client_id: str,
        subject: str,
        scopes: Iterable[str],
        audience: list[str],
        ttl: int,
        alg: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> IssuedAccessToken:
        now = int(self._clock.now().timestamp())
        jti = secrets.token_urlsafe(16)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": audience[0] if len(audience) == 1 else list(audience),
            "exp": now + ttl,
            "iat": now,
            "jti": jti,
            "client_id": client_id,
            "scope": " ".join(scopes),
        }
        if extra:
            claims.update(extra)
        if not audience:
            del claims["aud"]
        return IssuedAccessToken(self._sign(claims, alg=alg or self.default_alg, typ=ACCESS_TOKEN_TYP), jti, ttl, claims)

    def id_token(
        self,
        *,
        client_id: str,
        subject: str,
        ttl: int,
        auth_time: datetime | None,
        nonce: str | None,
        amr: list[str],
        acr: str | None,
        access_token: str | None,
        alg: str | None = None,
        claims: Mapping[str, Any] | None = None,
    ) -> str:
        alg = alg or self.default_alg
        now = int(self._clock.now().timestamp())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": client_id,
            "azp": client_id,
            "exp": now + ttl,
            "iat": now,
        }
        if auth_time is not None:
            body["auth_time"] = int(auth_time.timestamp())
        if nonce is not None:
            body["nonce"] = nonce
        if amr:
            body["amr"] = list(amr)
        if acr:
            body["acr"] = acr
        if access_token is not None:
            at_hash = create_half_hash(access_token, alg)
            if at_hash is None:  # Authlib has no hash for this algorithm (none of SUPPORTED_ALGS)
                raise ValueError(f"at_hash is not defined for {alg}")
            body["at_hash"] = at_hash.decode("ascii")
        if claims:
            body.update({k: v for k, v in claims.items() if k not in body})
        return self._sign(body, alg=alg, typ="JWT")

    def revocation_list(self, claims: Mapping[str, Any]) -> str:
        """The revocation feed document, signed like access tokens (default algorithm, current key)."""
        return self._sign(claims, alg=self.default_alg, typ=REVOCATION_LIST_TYP)

    def signing_kid(self) -> str:
        """The kid that signs with the default algorithm now (it changes on rotation)."""
        return self._keys.signing_key(self.default_alg).kid

    def verify_access_token(self, token: str, *, leeway: int = 0) -> dict[str, Any] | None:
        """Claims of a valid access token we issued (signature, typ, iss, exp), or None.

        A resource server introspects the same token on every call it serves, so a token whose signature
        checked out is remembered with the key set that checked it (at most ``VERIFIED_CACHE`` tokens):
        until the key set changes (reload, rotation, revocation) the signature is not checked again. Expiry
        is checked on every call; revocation is the caller's deny-list check.
        """
        if len(token) > 8192 or token.count(".") != 2:
            return None
        keys = self._keys.verification_keys
        remembered = self._verified.get(token)
        if remembered is not None and remembered[0] is keys:
            claims = remembered[1]
        else:
            try:
                with eddsa_allowed():
                    decoded = jwt.decode(token, keys, registry=self._verifying_registry)
            except (JoseError, ValueError, TypeError, KeyError):
                return None
            if decoded.header.get("typ") != ACCESS_TOKEN_TYP or decoded.claims.get("iss") != self.issuer:
                return None
            claims = dict(decoded.claims)
            self._remember(token, keys, claims)
        now = self._clock.now().timestamp()
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp + leeway <= now:
            return None
        return dict(claims)

    def verify_id_token_hint(self, token: str) -> dict[str, Any] | None:
        """Claims of an ID token we issued, presented back as ``id_token_hint``; None for anything else.

        Used by /authorize (OIDC Core §3.1.2.1) and /logout (RP-Initiated Logout §2). Checked: the signature
        against our published keys (explicit algorithms), ``typ: JWT`` (an access token is not an ID token),
        ``iss`` is us, ``sub`` a string and ``aud`` present. Not checked: expiry. Both specifications let a
        hint be expired (it names a person we already authenticated, it grants nothing), so an RP may send
        the ID token it got hours ago. Which client it must name is the caller's check (:func:`audience`).
        """
        if len(token) > 8192 or token.count(".") != 2:
            return None
        try:
            with eddsa_allowed():
                decoded = jwt.decode(token, self._keys.verification_keys, registry=self._verifying_registry)
        except (JoseError, ValueError, TypeError, KeyError):
            return None
        claims = dict(decoded.claims)
        if decoded.header.get("typ") != "JWT" or claims.get("iss") != self.issuer:
            return None
        if not isinstance(claims.get("sub"), str) or audience(claims) is None:
            return None
        return claims

    def _remember(self, token: str, keys: KeySet, claims: dict[str, Any]) -> None:
        if len(self._verified) >= VERIFIED_CACHE:
            now = self._clock.now().timestamp()
            self._verified = {
                t: entry for t, entry in self._verified.items()
                if entry[0] is keys and isinstance(entry[1].get("exp"), int) and entry[1]["exp"] > now
            }
            if len(self._verified) >= VERIFIED_CACHE:
                self._verified.clear()
        self._verified[token] = (keys, claims)


def audience(claims: Mapping[str, Any]) -> list[str] | None:
    """The ``aud`` claim as a list (RFC 7519 §4.1.3: a string or an array of strings); None if malformed."""
    value = claims.get("aud")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    return None
