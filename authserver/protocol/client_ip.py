"""The client's IP address (RFC 7239 §5.2 semantics for X-Forwarded-For), in one place.

``X-Forwarded-For`` is believed only when the TCP peer is a configured trusted proxy, and then only as
far as the chain of trusted proxies goes: walking the list from the right, the first address that is
not a trusted proxy is the client. Anything malformed stops the walk at the last trusted hop.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(proxies: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


@functools.lru_cache(maxsize=4096)  # a pure function of the text; the same few peers ask again and again
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: tuple[Network, ...]) -> bool:
    return any(address in network for network in networks)


def resolve(peer: str | None, forwarded_for: list[str], networks: tuple[Network, ...]) -> str:
    """The client address: the peer, or from X-Forwarded-For (all header lines, in order) via trusted proxies."""
    current = _address(peer) if peer else None
    if current is None:
        return peer[:64] if peer else "unknown"
    if not networks or not _trusted(current, networks):
        return str(current)
    hops = [hop for line in forwarded_for for hop in line.split(",")]
    for hop in reversed(hops[-32:]):
        address = _address(hop)
        if address is None:
            break
        current = address
        if not _trusted(current, networks):
            break
    return str(current)


def is_trusted(peer: str | None, networks: tuple[Network, ...]) -> bool:
    """Whether the TCP peer is one of the trusted proxies (their headers are believed)."""
    address = _address(peer) if peer else None
    return address is not None and bool(networks) and _trusted(address, networks)
