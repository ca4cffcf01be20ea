"""Where the client's TLS certificate comes from (RFC 8705), once per request.

- Behind a TLS-terminating proxy: the ``security.client_certificate_header`` the proxy sets, believed only
  when the TCP peer is one of ``security.trusted_proxies`` (the same rule as X-Forwarded-For); from anyone
  else the header is ignored. The proxy must overwrite (or delete) the header on every request, so a
  client cannot smuggle one through it. With ``security.client_certificate_verify_header`` the proxy says
  whether it verified the chain (``SUCCESS``); without, every forwarded certificate counts as verified.
- ``authserver serve`` terminating TLS: the peer certificate of the connection, from the ASGI TLS
  extension (``scope["extensions"]["tls"]["client_cert_chain"][0]``, filled by ``authserver.tls``); the
  handshake has already verified it against ``server.tls_client_ca_file``.

A header that is present but is not one certificate is a 400 ``invalid_request``.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from starlette.requests import Request

from authserver.protocol import certificates
from authserver.protocol import client_ip as client_ip_rules
from authserver.protocol.certificates import ClientCertificate
from authserver.settings import Settings

_SCOPE_KEY = "authserver.client_certificate"
_ABSENT = object()


def _trusted_networks(request: Request, settings: Settings) -> tuple[client_ip_rules.Network, ...]:
    networks = getattr(request.app.state, "trusted_proxy_networks", None)
    if networks is None:
        networks = client_ip_rules.parse_networks(settings.security.trusted_proxies)
        request.app.state.trusted_proxy_networks = networks
    return tuple(networks)


def _header(request: Request, name: str) -> str | None:
    """The header's single value; a header sent twice is malformed (a proxy sets it once)."""
    values = request.headers.getlist(name)
    if len(values) > 1:
        raise certificates.MalformedCertificate("header sent twice")
    return values[0] if values else None


def _from_tls_extension(scope: MutableMapping[str, Any]) -> ClientCertificate | None:
    tls = (scope.get("extensions") or {}).get("tls")
    if not isinstance(tls, dict):
        return None
    chain = tls.get("client_cert_chain") or []
    if not chain or not isinstance(chain[0], str):
        return None
    return ClientCertificate(certificates.pem_to_certificate(chain[0]), verified=True)


def client_certificate(request: Request) -> ClientCertificate | None:
    """The certificate the client presented on this request, or None (module docstring)."""
    cached = request.scope.get(_SCOPE_KEY, _ABSENT)
    if cached is not _ABSENT:
        return cached  # type: ignore[no-any-return]
    settings: Settings = request.app.state.services.settings
    found: ClientCertificate | None = None
    header = settings.security.client_certificate_header
    peer = request.client.host if request.client else None
    if header and client_ip_rules.is_trusted(peer, _trusted_networks(request, settings)):
        value = _header(request, header)
        if value is not None and value.strip() and value.strip() != "(null)":
            verified = True
            verify_header = settings.security.client_certificate_verify_header
            if verify_header:
                verified = (_header(request, verify_header) or "").strip() == "SUCCESS"
            found = ClientCertificate(certificates.parse_forwarded(value), verified=verified)
    elif settings.server.tls_client_ca_file:
        found = _from_tls_extension(request.scope)
    request.scope[_SCOPE_KEY] = found
    return found
