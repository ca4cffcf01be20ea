"""Redirect URIs (RFC 6749 §3.1.2, RFC 9700 §2.1 and §4.1.3, RFC 8252 §7.1, §7.3, §8.3): what a client may
register, how a presented URI is matched against the registered ones, and the redirect itself.

Registration (:func:`is_acceptable_registration`): an absolute URI of printable ASCII, with no userinfo
(``user@host``), no wildcard (``*``) or percent-encoding in the authority, and no fragment (not even an
empty ``#``). Its scheme is ``https`` with a host; ``http`` only on a loopback host (``127.0.0.1``,
``[::1]``, or ``localhost``, which RFC 8252 §8.3 calls NOT RECOMMENDED but allows; it gets no port
flexibility, see below); or a private-use scheme in reverse-DNS form, which contains a period
(RFC 8252 §7.1, ``com.example.app:/cb``).

Matching (:func:`matches`): simple string comparison. The one exception, for public (native) clients only,
is RFC 8252 §7.3: a registered ``http://127.0.0.1…`` or ``http://[::1]…`` URI matches the same URI with any
port; scheme, host, path and query still compare exactly. ``localhost`` is not a loopback IP literal and
always compares exactly.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit, urlunsplit

REGISTRATION_RULE = (
    "absolute, without userinfo, wildcard or fragment: https, http on a loopback host (127.0.0.1, [::1], localhost), "
    "or a private-use scheme with a period (com.example.app:/cb)"
)
_HTTP_HOSTS = {"127.0.0.1", "::1", "localhost"}
# http://<loopback IP literal>[:port][/path][?query], nothing else (no userinfo, no fragment).
_LOOPBACK_IP_URI = re.compile(r"http://(127\.0\.0\.1|\[::1\])(?::([0-9]{1,5}))?([/?][^#]*)?")


def is_acceptable_registration(uri: str) -> bool:
    """Whether a client may register ``uri`` as a redirect URI (the rule in the module docstring)."""
    if not uri or len(uri) > 2000 or not all("\x21" <= c <= "\x7e" for c in uri) or "\\" in uri or "#" in uri:
        return False
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    if any(c in parts.netloc for c in "@*%"):
        return False
    if parts.scheme == "https":
        return bool(parts.hostname)
    if parts.scheme == "http":
        return parts.hostname in _HTTP_HOSTS
    # RFC 8252 §7.1 private-use URI scheme: a reverse domain name, so it contains a period.
    return "." in parts.scheme


def matches(registered: tuple[str, ...], presented: str, *, loopback_any_port: bool) -> bool:
    """Simple string comparison; with ``loopback_any_port`` (public clients), a loopback IP URI's port may vary."""
    if presented in registered:
        return True
    if not loopback_any_port:
        return False
    key = _loopback_without_port(presented)
    return key is not None and any(_loopback_without_port(uri) == key for uri in registered)


def _loopback_without_port(uri: str) -> tuple[str, str] | None:
    """(host, path and query) of a loopback IP literal URI with a valid or no port; None for anything else."""
    match = _LOOPBACK_IP_URI.fullmatch(uri)
    if match is None:
        return None
    host, port, rest = match.groups()
    if port is not None and not 1 <= int(port) <= 65535:
        return None
    return host, rest or ""


def with_params(uri: str, params: dict[str, str]) -> str:
    """Add response parameters to the query, keeping the registered query component (RFC 6749 §3.1.2)."""
    parts = urlsplit(uri)
    query = urlencode(params)
    merged = f"{parts.query}&{query}" if parts.query else query
    return urlunsplit((parts.scheme, parts.netloc, parts.path, merged, ""))
