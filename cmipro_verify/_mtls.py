"""Certificate-bound access tokens (RFC 8705 §3) on the resource server's side.

A token with ``cnf.x5t#S256`` was issued to a client that proved a TLS client certificate; it is honoured
only on a request made with that same certificate. The API passes the certificate it saw (from its own TLS
termination, its proxy's header or API Gateway's ``requestContext.identity.clientCert.clientCertPem``) as
DER bytes or PEM; a token without ``cnf.x5t#S256`` is not affected.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from cmipro_verify._errors import InvalidToken

__all__ = ["certificate_thumbprint", "check_certificate_binding"]

Certificate = bytes | str


def certificate_thumbprint(certificate: Certificate) -> str:
    """RFC 8705 §3.1: base64url SHA-256 of the DER certificate, from DER bytes, PEM, or URL-encoded PEM
    (nginx ``$ssl_client_escaped_cert``). :class:`InvalidToken` if it is not one certificate."""
    try:
        if isinstance(certificate, str):
            text = unquote(certificate) if "%" in certificate else certificate
            parsed = x509.load_pem_x509_certificate(text.strip().encode("ascii"))
        elif certificate.lstrip().startswith(b"-----BEGIN"):
            parsed = x509.load_pem_x509_certificate(certificate)
        else:
            parsed = x509.load_der_x509_certificate(certificate)
    except (ValueError, UnicodeEncodeError):
        raise InvalidToken("the client certificate is malformed") from None
    return base64.urlsafe_b64encode(parsed.fingerprint(hashes.SHA256())).rstrip(b"=").decode("ascii")


def check_certificate_binding(claims: Mapping[str, Any], certificate: Certificate | None) -> None:
    """Refuse a certificate-bound token (``cnf.x5t#S256``) unless ``certificate`` is the one it is bound to."""
    cnf = claims.get("cnf")
    bound = cnf.get("x5t#S256") if isinstance(cnf, Mapping) else None
    if bound is None:
        return
    if certificate is None or (isinstance(certificate, (bytes, str)) and not certificate):
        raise InvalidToken("the token is bound to a client certificate and none was presented")
    if not isinstance(bound, str) or not hmac.compare_digest(bound, certificate_thumbprint(certificate)):
        raise InvalidToken("the token is bound to another client certificate")
