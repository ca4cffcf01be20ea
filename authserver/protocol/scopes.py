"""Scopes (RFC 6749 §3.3): space-delimited, order-free, case-sensitive tokens."""

from __future__ import annotations

import re

from authserver.errors import InvalidScope

_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def parse_scope(value: str | None) -> list[str]:
    """Ordered, de-duplicated scope tokens; raises InvalidScope on a malformed token."""
    if not value:
        return []
    result: list[str] = []
    for token in value.split(" "):
        if not token:
            continue
        if not _SCOPE_TOKEN.fullmatch(token):
            raise InvalidScope("The scope parameter is malformed.")
        if token not in result:
            result.append(token)
    return result


def format_scope(scopes: list[str] | tuple[str, ...] | set[str]) -> str:
    return " ".join(sorted(scopes) if isinstance(scopes, set) else scopes)
