"""Mutual-TLS client authentication (RFC 8705 §2) and certificate-bound access tokens (§3).

``authenticate`` is the authenticator of the two methods (an entry of the token endpoint's dispatch by
``token_endpoint_auth_method``); ``binding`` decides the ``x5t#S256`` a token endpoint response is bound to.
The client sends its ``client_id`` in the body and no secret; the certificate comes from
``endpoints._mtls.client_certificate``.
"""

from __future__ import annotations

from authserver.errors import InvalidClient, InvalidRequest
from authserver.protocol.certificates import (
    MTLS_METHODS,
    ClientCertificate,
    self_signed_matches,
    tls_client_auth_matches,
)
from authserver.protocol.client_auth import PresentedCredentials
from authserver.storage.sql.clients import ClientInfo

__all__ = ["MTLS_METHODS", "authenticate", "binding"]


def authenticate(client: ClientInfo, presented: PresentedCredentials, certificate: ClientCertificate | None) -> InvalidClient | None:
    """None when the certificate authenticates the client, else the error to answer.

    - ``tls_client_auth`` (§2.1): the chain was verified against the client CAs (our handshake or the
      proxy) and the one registered subject DN or SAN names the certificate.
    - ``self_signed_tls_client_auth`` (§2.2): the certificate's public key is in the client's ``jwks``
      (no chain: it may be self-signed).
    """
    if presented.method != "none":
        return InvalidClient("This client authenticates with its TLS client certificate.")
    if certificate is None:
        return InvalidClient("A TLS client certificate is required.")
    method = client.token_endpoint_auth_method
    if method == "tls_client_auth":
        ok = certificate.verified and tls_client_auth_matches(client, certificate.certificate)
    else:
        ok = method == "self_signed_tls_client_auth" and self_signed_matches(client.jwks, certificate.certificate)
    return None if ok else InvalidClient()


def binding(client: ClientInfo, certificate: ClientCertificate | None) -> str | None:
    """The ``x5t#S256`` the client's access tokens are bound to (§3), or None for bearer tokens.

    Bound when the client authenticated with its certificate or registered
    ``tls_client_certificate_bound_access_tokens``; such a client presenting no certificate is refused.
    """
    wants = client.tls_client_certificate_bound_access_tokens or client.token_endpoint_auth_method in MTLS_METHODS
    if not wants:
        return None
    if certificate is None:
        raise InvalidRequest("This client's access tokens are bound to its TLS client certificate: present one.")
    return certificate.thumbprint
