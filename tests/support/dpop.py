"""A DPoP client nobody here wrote: proofs built with joserfc (and PyJWT for a second opinion), never with
authserver's own code."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt as pyjwt
from joserfc import jws
from joserfc.jwk import ECKey, RSAKey

ISSUER = "http://testserver"


def ath_of(token: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(token.encode()).digest()).rstrip(b"=").decode()


@dataclass
class Prover:
    """A client's DPoP key and proofs of it (RFC 9449 §4.2)."""

    key: Any = field(default_factory=lambda: ECKey.generate_key("P-256"))
    alg: str = "ES256"
    clock: Any = time.time

    @property
    def public_jwk(self) -> dict[str, Any]:
        return dict(self.key.as_dict(private=False))

    @property
    def jkt(self) -> str:
        return str(self.key.thumbprint())

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        iat: float | None = None,
        jti: str | None = None,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
    ) -> str:
        protected: dict[str, Any] = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public_jwk}
        protected.update(header or {})
        payload: dict[str, Any] = {
            "jti": jti or uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(iat if iat is not None else self.clock()),
        }
        if access_token is not None:
            payload["ath"] = ath_of(access_token)
        if nonce is not None:
            payload["nonce"] = nonce
        payload.update(claims or {})
        # A member given as None is left out (to make proofs that lack it).
        protected = {k: v for k, v in protected.items() if v is not None}
        payload = {k: v for k, v in payload.items() if v is not None}
        return jws.serialize_compact(protected, json.dumps(payload), self.key, algorithms=[protected["alg"]])

    def pyjwt_proof(self, method: str, url: str, *, access_token: str | None = None) -> str:
        """The same proof made by PyJWT from the PEM of the key."""
        pem = self.key.as_pem(private=True)
        payload: dict[str, Any] = {"jti": uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(self.clock())}
        if access_token is not None:
            payload["ath"] = ath_of(access_token)
        return pyjwt.encode(payload, pem, algorithm=self.alg, headers={"typ": "dpop+jwt", "jwk": self.public_jwk})


def rsa_prover() -> Prover:
    return Prover(key=RSAKey.generate_key(2048), alg="PS256")
