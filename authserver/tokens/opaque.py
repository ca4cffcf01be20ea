"""Opaque secrets (codes, refresh tokens, client secrets, session ids): random values stored as digests.

Each value carries 256 bits from the CSPRNG (RFC 6749 §10.10 asks for at least 128) and a short prefix
that says what it is (as fosite's ``ory_rt_``), so a leaked value is recognisable in logs and scanners.
Only ``digest(value)`` is stored: a database leak yields nothing usable.
"""

from __future__ import annotations

import hashlib
import secrets

CODE_PREFIX = "ac_"
REFRESH_PREFIX = "rt_"
CLIENT_SECRET_PREFIX = "cs_"
SESSION_PREFIX = "ss_"
# Single-use links sent by mail (authserver/web/self_service.py): password reset, e-mail verification.
RESET_PREFIX = "pr_"
VERIFY_PREFIX = "ev_"
# One step of MFA recovery: offered after a sign-in with a backup code, to set up a new authenticator.
RECOVER_PREFIX = "mr_"
# Invitation codes for sign-up (self_service.signup_requires_invitation), made by an operator.
INVITATION_PREFIX = "inv_"


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def new_id(nbytes: int = 16) -> str:
    return secrets.token_urlsafe(nbytes)
