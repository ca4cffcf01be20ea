"""TOTP (RFC 6238 §4, §5.2) with pyotp: HMAC-SHA-1, 6 digits, 30-second steps, at most ±1 step of drift.

Verification returns the *time step* the code belongs to, so the caller can refuse any code of that step
or an earlier one afterwards (RFC 6238 §5.2: "the verifier MUST NOT accept the second attempt of the
same OTP"). pyotp itself keeps no such state (SPEC §0.1 item 11); the step is claimed durably in
``SqlMfaStore.claim_totp_step``.
"""

from __future__ import annotations

import hmac
from datetime import datetime

import pyotp

DIGITS = 6
PERIOD = 30
# Accepted drift, in steps, either side of the server's current step (RFC 6238 §5.2 recommends one).
WINDOW = 1


def new_secret() -> str:
    """A fresh 160-bit secret from the CSPRNG (RFC 4226 §4 R6), base32 as authenticator apps expect."""
    return pyotp.random_base32(32)


def _totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)


def step_at(moment: datetime) -> int:
    return int(moment.timestamp()) // PERIOD


def normalise_code(code: str) -> str | None:
    """The code as typed (spaces and dashes allowed), or None unless it is exactly six ASCII digits."""
    cleaned = code.replace(" ", "").replace("-", "").strip()
    if len(cleaned) != DIGITS or not cleaned.isascii() or not cleaned.isdigit():
        return None
    return cleaned


def matching_step(secret: str, code: str, *, now: datetime, window: int = WINDOW) -> int | None:
    """The time step within ±window of ``now`` whose code equals ``code``, or None.

    Every candidate is computed and compared in constant time, so timing says nothing about which one matched.
    """
    cleaned = normalise_code(code)
    if cleaned is None:
        return None
    totp = _totp(secret)
    current = step_at(now)
    found: int | None = None
    for step in range(current - window, current + window + 1):
        if hmac.compare_digest(totp.generate_otp(step).encode(), cleaned.encode()) and found is None:
            found = step
    return found


def code_at(secret: str, moment: datetime) -> str:
    """The code an authenticator app shows at ``moment`` (used by tests and tooling)."""
    return _totp(secret).generate_otp(step_at(moment))


def provisioning_uri(secret: str, *, account_name: str, issuer: str) -> str:
    """The otpauth:// URI (Key Uri Format) with explicit algorithm, digits and period."""
    uri = _totp(secret).provisioning_uri(name=account_name, issuer_name=issuer)
    # pyotp omits the defaults; some apps guess wrongly without them.
    extras = [p for p in ("algorithm=SHA1", f"digits={DIGITS}", f"period={PERIOD}") if p.split("=")[0] + "=" not in uri]
    return uri + ("&" if "?" in uri else "?") + "&".join(extras) if extras else uri


def format_secret(secret: str) -> str:
    """The secret in groups of four, for people who type it instead of scanning."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
