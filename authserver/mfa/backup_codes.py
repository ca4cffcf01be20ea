"""Backup codes (lookup secrets, NIST SP 800-63B §5.1.2; ASVS 5 §6.5.1-6.5.2): shown once, stored hashed.

A code is 12 characters of Crockford's base32 alphabet (60 bits from the CSPRNG), shown as
``XXXX-XXXX-XXXX``. Typing is forgiving: case, spaces and dashes are ignored and the look-alikes
O/I/L are read as 0/1/1.

Storage: ``sha256$<salt>$<hex digest>`` with a random 16-byte salt per row. A slow hash (argon2) is not
needed because the codes are not chosen by people: 2^60 possibilities per code make an offline search
of a stolen table costly, and a found code is still useless without the account's password. A fast
hash also keeps checking a presented code against every remaining row cheap (docs/mfa.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_CHARS = 12
GROUP = 4
_LOOKALIKES = str.maketrans({"O": "0", "I": "1", "L": "1"})


def generate(count: int) -> list[str]:
    """``count`` distinct new codes, formatted for display."""
    codes: set[str] = set()
    while len(codes) < count:
        codes.add("".join(secrets.choice(ALPHABET) for _ in range(CODE_CHARS)))
    return [format_code(c) for c in sorted(codes)]


def format_code(raw: str) -> str:
    return "-".join(raw[i : i + GROUP] for i in range(0, len(raw), GROUP))


def normalise(code: str) -> str | None:
    """The canonical 12-character form of a typed code, or None if it cannot be a backup code."""
    cleaned = code.replace("-", "").replace(" ", "").strip().upper().translate(_LOOKALIKES)
    if len(cleaned) != CODE_CHARS or any(ch not in ALPHABET for ch in cleaned):
        return None
    return cleaned


def hash_code(code: str) -> str:
    raw = normalise(code)
    if raw is None:
        raise ValueError("not a backup code")
    salt = secrets.token_bytes(16)
    return f"sha256${base64.urlsafe_b64encode(salt).decode()}${hashlib.sha256(salt + raw.encode()).hexdigest()}"


def matches(code_hash: str, normalised: str) -> bool:
    """Constant-time check of a normalised code against one stored hash."""
    try:
        scheme, salt_b64, expected = code_hash.split("$")
        salt = base64.urlsafe_b64decode(salt_b64)
    except ValueError:
        return False
    if scheme != "sha256":
        return False
    return hmac.compare_digest(hashlib.sha256(salt + normalised.encode()).hexdigest(), expected)
