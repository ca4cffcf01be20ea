"""Verify CMIPRO access tokens offline: RFC 9068 JWTs checked against the authorization server's JWKS.

Depends on joserfc and httpx only (never on the authorization server)::

    from cmipro_verify import Verifier

    verifier = Verifier(issuer="https://auth.cmipro.example", audience="https://api.cmipro.example")
    claims = verifier.verify(token)             # or: await verifier.verify_async(token)
    claims.require_scopes("read:levels")

    # DPoP-bound tokens (RFC 9449): the Authorization and DPoP headers, the method and the URL called.
    claims = verifier.verify_request(authorization, dpop=dpop_header, method="GET", url="https://api.example/levels")

Exceptions (all carry the RFC 6750 ``error`` code and the HTTP status to answer with)::

    TokenError
     ├── InvalidToken        401 invalid_token       (bad signature, expired, wrong audience, unknown kid …)
     │    └── InvalidDpopProof  401 invalid_dpop_proof (missing, bad, replayed proof; another key)
     ├── InsufficientScope   403 insufficient_scope  (valid token, missing scope or role)
     └── Unavailable         503 temporarily_unavailable (not the caller's fault)
          ├── JWKSUnavailable        no key set could ever be fetched
          └── RevocationUnavailable  no recent enough revocation feed, on_revocation_unavailable="closed"

Certificate-bound tokens (RFC 8705, ``cnf.x5t#S256``): pass the request's TLS client certificate,
``verifier.verify(token, client_certificate=der_or_pem)``; a bound token is refused without it.

Revoked tokens (revoked token, family, disabled person or client) are refused as ``InvalidToken`` within
``revocation_freshness`` seconds (30 by default) of the revocation; see docs/verifying-tokens.md.
"""

from cmipro_verify._claims import Claims
from cmipro_verify._dpop import DEFAULT_DPOP_ALGORITHMS, MemoryReplayCache, ReplayCache
from cmipro_verify._errors import (
    InsufficientScope,
    InvalidDpopProof,
    InvalidToken,
    JWKSUnavailable,
    RevocationUnavailable,
    TokenError,
    Unavailable,
)
from cmipro_verify._jwks import JWKSCache
from cmipro_verify._mtls import certificate_thumbprint, check_certificate_binding
from cmipro_verify._revocations import RevocationFeed, RevocationList
from cmipro_verify._verifier import DEFAULT_ALGORITHMS, Verifier, bearer_token

__all__ = [
    "DEFAULT_ALGORITHMS",
    "DEFAULT_DPOP_ALGORITHMS",
    "Claims",
    "InsufficientScope",
    "InvalidDpopProof",
    "InvalidToken",
    "JWKSCache",
    "JWKSUnavailable",
    "MemoryReplayCache",
    "ReplayCache",
    "RevocationFeed",
    "RevocationList",
    "RevocationUnavailable",
    "TokenError",
    "Unavailable",
    "Verifier",
    "bearer_token",
    "certificate_thumbprint",
    "check_certificate_binding",
]
