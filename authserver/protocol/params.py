"""Request parameters (RFC 6749 §3.1): decoded strictly, sent at most once, bounded in number and size.

A parameter without a value is treated as omitted. Anything malformed becomes ``invalid_request``
before any lookup or write happens.
"""

from __future__ import annotations

from urllib.parse import unquote

from authserver.errors import InvalidRequest

MAX_PARAMS = 64
MAX_VALUE_CHARS = 4096


def parse_pairs(pairs: list[tuple[str, str]], *, max_params: int = MAX_PARAMS, max_value: int = MAX_VALUE_CHARS) -> dict[str, str]:
    if len(pairs) > max_params:
        raise InvalidRequest("Too many parameters.")
    params: dict[str, str] = {}
    for name, value in pairs:
        if len(name) > 128 or len(value) > max_value:
            raise InvalidRequest(f"Parameter {_safe(name)} is too long.")
        if "\x00" in name or "\x00" in value:
            raise InvalidRequest("Parameters must not contain NUL characters.")
        if value == "":
            continue
        if name in params:
            raise InvalidRequest(f"Parameter {_safe(name)} was sent more than once.")
        params[name] = value
    return params


def parse_urlencoded(body: bytes, **limits: int) -> dict[str, str]:
    """application/x-www-form-urlencoded → dict, refusing bad UTF-8 and duplicates."""
    try:
        text = body.decode("ascii")
        if text.count("&") >= MAX_PARAMS * 2:
            raise ValueError("too many fields")
        # urllib.parse.parse_qsl(keep_blank_values=True, errors="strict") without its per-field cost:
        # only fields that carry an escape or a '+' are decoded (this runs on every token request).
        pairs = [(_unquote(name), _unquote(value)) for name, _, value in (f.partition("=") for f in text.split("&") if f)]
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The request body is not valid form encoding.") from None
    return parse_pairs(pairs, **limits)


def _unquote(part: str) -> str:
    if "%" not in part and "+" not in part:
        return part
    return unquote(part.replace("+", " "), encoding="utf-8", errors="strict")


def parse_query(query_string: bytes, **limits: int) -> dict[str, str]:
    return parse_urlencoded(query_string, **limits)


def _safe(name: str) -> str:
    cleaned = "".join(c for c in name[:40] if 0x20 <= ord(c) < 0x7F and c not in '"\\')
    return cleaned or "?"
