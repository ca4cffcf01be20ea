"""Redirect URIs (RFC 6749 §3.1.2, RFC 9700 §2.1, RFC 8252 §7.3): exact match, and the redirect itself."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

_LOOPBACK_HOSTS = {"127.0.0.1", "::1"}


def is_acceptable_registration(uri: str) -> bool:
    """Absolute, no fragment; https, or http only on loopback, or a private-use scheme for native apps."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    if not parts.scheme or parts.fragment or "#" in uri:
        return False
    if parts.scheme == "https":
        return bool(parts.hostname)
    if parts.scheme == "http":
        return parts.hostname in {"localhost", "127.0.0.1", "::1"}
    # RFC 8252 §7.1 private-use URI scheme (reverse domain name, contains a dot)
    return "." in parts.scheme


def matches(registered: tuple[str, ...], presented: str) -> bool:
    """Simple string comparison; only the port of a loopback IP redirect may vary (RFC 8252 §7.3)."""
    if presented in registered:
        return True
    key = _loopback_without_port(presented)
    return key is not None and any(_loopback_without_port(uri) == key for uri in registered)


def _loopback_without_port(uri: str) -> str | None:
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return None
    if not uri.startswith(("http://127.0.0.1", "http://[::1]")) or parts.hostname not in _LOOPBACK_HOSTS or parts.username or parts.password:
        return None
    host = "[::1]" if parts.hostname == "::1" else parts.hostname
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def with_params(uri: str, params: dict[str, str]) -> str:
    """Add response parameters to the query, keeping the registered query component (RFC 6749 §3.1.2)."""
    parts = urlsplit(uri)
    query = urlencode(params)
    merged = f"{parts.query}&{query}" if parts.query else query
    return urlunsplit((parts.scheme, parts.netloc, parts.path, merged, ""))
