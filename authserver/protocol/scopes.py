"""Scopes (RFC 6749 §3.3): space-delimited, order-free, case-sensitive tokens.

Wherever a list of scopes enters the server (a request, the settings, the CLI, the admin API, dynamic
registration), repeats are dropped and the first occurrence keeps its place (:func:`unique`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from authserver.errors import InvalidScope

# scope-token = 1*( %x21 / %x23-5B / %x5D-7E ): printable ASCII except space, `"` and `\`.
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def is_scope_token(value: str) -> bool:
    return bool(_SCOPE_TOKEN.fullmatch(value))


def unique(values: Iterable[str]) -> list[str]:
    """The values without repeats, in the order of their first occurrence."""
    return list(dict.fromkeys(values))


def parse_scope(value: str | None) -> list[str]:
    """Ordered, de-duplicated scope tokens; raises InvalidScope on a malformed token."""
    if not value:
        return []
    tokens = [token for token in value.split(" ") if token]
    if not all(is_scope_token(token) for token in tokens):
        raise InvalidScope("The scope parameter is malformed.")
    return unique(tokens)


def format_scope(scopes: list[str] | tuple[str, ...] | set[str]) -> str:
    return " ".join(sorted(scopes) if isinstance(scopes, set) else scopes)
