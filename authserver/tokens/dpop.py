"""DPoP state (RFC 9449 §11.1 replay, §8-9 server nonce): what the stateless checks of
``authserver.protocol.dpop`` cannot decide alone.

- **Replay.** A proof's ``jti`` is single use across every instance: it is added to the shared cache
  (``Cache.add``, Redis ``SET NX``) under a digest of the key thumbprint and the ``jti``, for as long as the
  proof could pass the ``iat`` window. A second use anywhere is refused.
- **Nonce.** Stateless, so any instance accepts any instance's nonce: the nonce of a time bucket of
  ``dpop.nonce_lifetime`` seconds is HMAC-SHA256(key, bucket) (base64url), the key derived with HKDF from
  the active encryption key (``Encryptor.derive_key``), which every instance shares. The nonce of the
  current and of the previous bucket are accepted, so a nonce lives one to two lifetimes and rotates on its
  own. With ``dpop.require_nonce`` a proof without a valid nonce gets ``use_dpop_nonce`` and a fresh nonce
  in the ``DPoP-Nonce`` header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from authserver.clock import Clock
from authserver.errors import InvalidDpopProof, UseDpopNonce
from authserver.protocol.dpop import Proof, ProofError, check_proof, single_header
from authserver.settings import DpopSettings
from authserver.storage.cache import Cache

NONCE_HEADER = "DPoP-Nonce"


class DpopGuard:
    def __init__(self, settings: DpopSettings, *, cache: Cache, clock: Clock, nonce_key: bytes) -> None:
        self.settings = settings
        self._cache = cache
        self._clock = clock
        self._nonce_key = nonce_key
        self.algorithms = tuple(settings.signing_algs)

    # -- nonce -------------------------------------------------------------------------------------

    def _nonce_of(self, bucket: int) -> str:
        mac = hmac.new(self._nonce_key, f"dpop-nonce:{bucket}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def _bucket(self) -> int:
        return int(self._clock.now().timestamp()) // self.settings.nonce_lifetime

    def nonce(self) -> str:
        """The nonce to hand out now (the ``DPoP-Nonce`` header value)."""
        return self._nonce_of(self._bucket())

    def nonce_valid(self, nonce: str | None) -> bool:
        if nonce is None:
            return False
        bucket = self._bucket()
        return any(hmac.compare_digest(nonce.encode(), self._nonce_of(b).encode()) for b in (bucket, bucket - 1))

    def nonce_headers(self) -> dict[str, str]:
        """Headers for a successful answer: the current nonce when nonces are required (§8.2), else none."""
        return {NONCE_HEADER: self.nonce()} if self.settings.require_nonce else {}

    # -- proofs ------------------------------------------------------------------------------------

    async def check(
        self, values: list[str], *, method: str, url: str, access_token: str | None = None
    ) -> Proof | None:
        """The request's proof, checked and its ``jti`` spent; None if the request has no ``DPoP`` header.

        Raises ``InvalidDpopProof`` (status 400; a resource answers 401) or ``UseDpopNonce`` with the
        ``DPoP-Nonce`` header. Nothing is spent when the proof is refused before the replay check.
        """
        try:
            raw = single_header(values)
            if raw is None:
                return None
            settings = self.settings
            proof = check_proof(
                raw, method=method, url=url, algorithms=self.algorithms, now=self._clock.now().timestamp(),
                max_age=settings.max_age, leeway=settings.leeway, max_bytes=settings.max_proof_bytes,
                access_token=access_token,
            )
        except ProofError as error:
            raise InvalidDpopProof(error.reason) from None
        if settings.require_nonce and not self.nonce_valid(proof.nonce):
            # A missing, stale or foreign nonce alike: here is the one to use (§8.1).
            retry = UseDpopNonce()
            retry.headers[NONCE_HEADER] = self.nonce()
            raise retry
        seen = hashlib.sha256(f"{proof.jkt}:{proof.jti}".encode()).hexdigest()
        if not await self._cache.add(f"dpop:jti:{seen}", "1", settings.max_age + settings.leeway + 1):
            raise InvalidDpopProof("The DPoP proof was already used.")
        return proof


__all__ = ["NONCE_HEADER", "DpopGuard"]
