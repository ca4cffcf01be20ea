"""`authserver serve` terminating TLS itself: the peer certificate reaches the app as the ASGI TLS extension.

uvicorn (0.55) verifies client certificates when asked (``ssl_ca_certs``, ``ssl_cert_reqs``) but does not
fill ``scope["extensions"]["tls"]`` (the ASGI TLS extension; uvicorn pull requests #1119, #3043 and #3132
are still open). The HTTP protocol classes below, given to uvicorn as ``http=``, add it: once per
connection, when the handshake is done, they read the peer certificate from the transport's
``ssl_object`` and wrap the connection's application so every request scope carries::

    {"server_cert": None, "client_cert_chain": [<PEM>] or [], "client_cert_name": <RFC 4514 DN> or None,
     "client_cert_error": None, "tls_version": 0x0304, "cipher_suite": None}

``client_cert_chain`` holds the leaf only (CPython cannot give the verified chain before 3.13);
``client_cert_error`` is always None because a certificate that fails verification ends the handshake,
so such a connection never reaches the app. Plain-HTTP connections get no ``tls`` entry.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

from cryptography import x509
from uvicorn.protocols.http.h11_impl import H11Protocol

TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


def tls_extension(ssl_object: ssl.SSLObject) -> dict[str, Any]:
    """The ASGI TLS extension of one connection."""
    der = ssl_object.getpeercert(binary_form=True)
    chain: list[str] = []
    name = None
    if der:
        chain = [ssl.DER_cert_to_PEM_cert(der)]
        try:
            name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
        except ValueError:
            name = None
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": TLS_VERSIONS.get(ssl_object.version() or ""),
        "cipher_suite": None,
    }


class _WithTls:
    """The application of one TLS connection: adds the connection's TLS extension to every scope."""

    def __init__(self, app: Any, tls: dict[str, Any]) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") in {"http", "websocket"}:
            scope["extensions"] = {**(scope.get("extensions") or {}), "tls": self.tls}
        await self.app(scope, receive, send)


class _TlsExtension:
    app: Any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        ssl_object = transport.get_extra_info("ssl_object")
        if isinstance(ssl_object, ssl.SSLObject):
            self.app = _WithTls(self.app, tls_extension(ssl_object))


class H11TlsProtocol(_TlsExtension, H11Protocol):
    """uvicorn's h11 protocol with the ASGI TLS extension."""


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # pragma: no cover - httptools is optional; h11 then serves
    HTTP_PROTOCOL = "authserver.tls:H11TlsProtocol"
else:

    class HttpToolsTlsProtocol(_TlsExtension, HttpToolsProtocol):
        """uvicorn's httptools protocol (its default when installed) with the ASGI TLS extension."""

    HTTP_PROTOCOL = "authserver.tls:HttpToolsTlsProtocol"


def uvicorn_tls_options(server: Any) -> dict[str, Any]:
    """uvicorn.run keyword arguments for ``server`` (ServerSettings): none without ``tls_certfile``."""
    if not server.tls_certfile:
        return {}
    options: dict[str, Any] = {"ssl_certfile": server.tls_certfile, "ssl_keyfile": server.tls_keyfile}
    if server.tls_client_ca_file:
        options.update(
            ssl_ca_certs=server.tls_client_ca_file,
            ssl_cert_reqs=ssl.CERT_REQUIRED if server.tls_client_cert_required else ssl.CERT_OPTIONAL,
            http=HTTP_PROTOCOL,
        )
    return options
