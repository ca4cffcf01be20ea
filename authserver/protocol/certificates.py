"""Client certificates for mutual-TLS (RFC 8705), pure: reading one, its thumbprint, matching it to a client.

- Reading: a DER certificate from the ASGI TLS extension (``authserver serve`` terminating TLS) or the value
  of a proxy's header: URL-encoded PEM (nginx ``$ssl_client_escaped_cert``, AWS ALB
  ``X-Amzn-Mtls-Clientcert``), PEM, bare base64 DER (Traefik, HAProxy ``ssl_c_der,base64``) or an Envoy
  ``x-forwarded-client-cert`` element with one ``Cert="…"``. Anything else is :class:`MalformedCertificate`.
- §3.1: the ``x5t#S256`` thumbprint is the base64url SHA-256 of the DER certificate.
- §2.1.2 ``tls_client_auth``: exactly one registered name (subject DN, or a SAN of type dNSName, URI,
  iPAddress or rfc822Name) must match. DNs are compared per RFC 4517 distinguishedNameMatch as far as it
  matters here: the same RDNs in the same order, attribute types by OID, values case-insensitively with
  insignificant spaces removed; both sides are parsed by cryptography (``Name.from_rfc4514_string``).
- §2.2 ``self_signed_tls_client_auth``: the certificate's public key is one of the client's registered JWKs.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from authserver.errors import InvalidRequest

# A client certificate is a few KiB; a chain or garbage is refused before parsing.
MAX_CERTIFICATE_BYTES = 8 * 1024
PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.DOTALL)
XFCC_CERT = re.compile(r'(?:^|;)\s*Cert="([^"]*)"', re.IGNORECASE)
_SEPARATOR_SPACES = re.compile(r"(?<!\\)\s*(?<!\\)([,+])\s*")
MTLS_METHODS = ("tls_client_auth", "self_signed_tls_client_auth")
SAN_FIELDS = ("tls_client_auth_san_dns", "tls_client_auth_san_uri", "tls_client_auth_san_ip", "tls_client_auth_san_email")
NAME_FIELDS = ("tls_client_auth_subject_dn", *SAN_FIELDS)


class MalformedCertificate(InvalidRequest):
    """A certificate header that is not one certificate (RFC 6749 §5.2 invalid_request, 400)."""

    def __init__(self, debug: str | None = None) -> None:
        super().__init__("The client certificate is malformed.", debug=debug)


@dataclass(frozen=True)
class ClientCertificate:
    """The certificate the client presented, and whether its chain was verified against the client CAs
    (by our TLS handshake, or by the proxy that forwarded it)."""

    certificate: x509.Certificate
    verified: bool

    @property
    def thumbprint(self) -> str:
        return thumbprint(self.certificate)


def thumbprint(certificate: x509.Certificate) -> str:
    """RFC 8705 §3.1 ``x5t#S256``: base64url (no padding) of the SHA-256 of the DER certificate."""
    return base64.urlsafe_b64encode(certificate.fingerprint(hashes.SHA256())).rstrip(b"=").decode("ascii")


def load_der(der: bytes) -> x509.Certificate:
    if not der or len(der) > MAX_CERTIFICATE_BYTES:
        raise MalformedCertificate("size")
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise MalformedCertificate("not DER") from None


def parse_forwarded(value: str) -> x509.Certificate:
    """The certificate in a proxy's header value (module docstring), or :class:`MalformedCertificate`."""
    if len(value) > 4 * MAX_CERTIFICATE_BYTES:
        raise MalformedCertificate("size")
    xfcc = XFCC_CERT.findall(value)
    if xfcc:
        if len(xfcc) != 1 or "," in re.sub(r'"[^"]*"', "", value):
            raise MalformedCertificate("several x-forwarded-client-cert elements")
        value = xfcc[0]
    try:
        text = unquote(value.strip(), errors="strict") if "%" in value else value.strip()
    except UnicodeDecodeError:
        raise MalformedCertificate("not UTF-8") from None
    blocks = PEM.findall(text)
    if len(blocks) > 1:
        raise MalformedCertificate("several certificates")
    body = blocks[0] if blocks else text
    try:
        der = base64.b64decode(re.sub(r"\s+", "", body), validate=True)
    except (binascii.Error, ValueError):
        raise MalformedCertificate("not base64") from None
    return load_der(der)


def pem_to_certificate(pem: str) -> x509.Certificate:
    """A PEM certificate as the ASGI TLS extension gives it (``client_cert_chain[0]``)."""
    return parse_forwarded(pem)


# -- tls_client_auth (§2.1) ------------------------------------------------------------------------

def _normal(value: str | bytes) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return " ".join(text.split()).casefold()


def _rdns(name: x509.Name) -> list[frozenset[tuple[str, str]]]:
    return [frozenset((a.oid.dotted_string, _normal(a.value)) for a in rdn) for rdn in name.rdns]


def parse_dn(dn: str) -> x509.Name:
    """An RFC 4514 string as a Name, or ValueError (also for an empty one).

    Unescaped spaces around an RDN separator ("CN=a, O=b", as people and OpenSSL's old format write DNs) are
    tolerated; everything else is cryptography's strict RFC 4514 parser.
    """
    name = x509.Name.from_rfc4514_string(_SEPARATOR_SPACES.sub(r"\1", dn.strip()))
    if not name.rdns:
        raise ValueError("empty distinguished name")
    return name


def dn_matches(registered: str, subject: x509.Name) -> bool:
    try:
        wanted = parse_dn(registered)
    except ValueError:
        return False
    return _rdns(wanted) == _rdns(subject)


def _sans(certificate: x509.Certificate) -> x509.SubjectAlternativeName | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # a malformed extension: no names to match
        return None


def _email_key(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.casefold()}"


def san_matches(field: str, registered: str, certificate: x509.Certificate) -> bool:
    sans = _sans(certificate)
    if sans is None:
        return False
    if field == "tls_client_auth_san_dns":
        return registered.casefold().rstrip(".") in {d.casefold().rstrip(".") for d in sans.get_values_for_type(x509.DNSName)}
    if field == "tls_client_auth_san_uri":
        return registered in sans.get_values_for_type(x509.UniformResourceIdentifier)
    if field == "tls_client_auth_san_ip":
        try:
            wanted = ipaddress.ip_address(registered)
        except ValueError:
            return False
        return wanted in sans.get_values_for_type(x509.IPAddress)
    if field == "tls_client_auth_san_email":
        return _email_key(registered) in {_email_key(e) for e in sans.get_values_for_type(x509.RFC822Name)}
    return False


def registered_name(client: Any) -> tuple[str, str] | None:
    """The one tls_client_auth name a client registered: (field, value), or None if not exactly one."""
    names = [(f, getattr(client, f)) for f in NAME_FIELDS if getattr(client, f, None)]
    return names[0] if len(names) == 1 else None


def tls_client_auth_matches(client: Any, certificate: x509.Certificate) -> bool:
    """RFC 8705 §2.1.2: the registered subject DN or SAN names this certificate."""
    name = registered_name(client)
    if name is None:
        return False
    field, value = name
    if field == "tls_client_auth_subject_dn":
        return dn_matches(value, certificate.subject)
    return san_matches(field, value, certificate)


# -- self_signed_tls_client_auth (§2.2) ------------------------------------------------------------

def _spki(key: Any) -> bytes | None:
    try:
        return bytes(key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    except (AttributeError, TypeError, ValueError):
        return None


def public_keys(jwks: Mapping[str, Any] | None) -> list[bytes]:
    """The public keys of a registered JWK Set, as DER SubjectPublicKeyInfo (keys joserfc cannot read are skipped)."""
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    if not isinstance(jwks, Mapping) or not isinstance(jwks.get("keys"), list):
        return []
    found: list[bytes] = []
    for entry in jwks["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") not in {"RSA", "EC", "OKP"}:
            continue
        try:
            key = KeySet.import_key_set({"keys": [{k: v for k, v in entry.items() if k != "d"}]}).keys[0]
        except (JoseError, ValueError, TypeError, KeyError):
            continue
        raw = key.raw_value
        spki = _spki(raw.public_key() if hasattr(raw, "public_key") else raw)
        if spki is not None:
            found.append(spki)
    return found


def self_signed_matches(jwks: Mapping[str, Any] | None, certificate: x509.Certificate) -> bool:
    """RFC 8705 §2.2: the certificate's public key is one of the client's registered keys."""
    presented = _spki(certificate.public_key())
    return presented is not None and presented in public_keys(jwks)


# -- registration ------------------------------------------------------------------------------------

def check_name(field: str, value: str) -> str | None:
    """A problem with a registered tls_client_auth name, or None."""
    if field == "tls_client_auth_subject_dn":
        try:
            parse_dn(value)
        except ValueError:
            return "must be a distinguished name in RFC 4514 form, e.g. CN=client,O=Example,C=HN"
        return None
    if field == "tls_client_auth_san_ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return "must be an IPv4 or IPv6 address"
        return None
    if field == "tls_client_auth_san_dns":
        return None if re.fullmatch(r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62}\.)*[A-Za-z0-9-]{1,63}\.?", value) else "must be a DNS name"
    if field == "tls_client_auth_san_uri":
        return None if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*:\S+", value) else "must be an absolute URI"
    if field == "tls_client_auth_san_email":
        return None if re.fullmatch(r"[^@\s]+@[^@\s]+", value) else "must be an e-mail address"
    return "unknown field"


def check_metadata(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems with a client's mTLS metadata as a whole: (field, message) pairs.

    ``values`` holds token_endpoint_auth_method, the tls_client_auth_* names and jwks (any may be absent).
    """
    problems: list[tuple[str, str]] = []
    method = values.get("token_endpoint_auth_method")
    names = [f for f in NAME_FIELDS if values.get(f)]
    for f in names:
        problem = check_name(f, str(values[f]))
        if problem:
            problems.append((f, problem))
    if method == "tls_client_auth" and len(names) != 1:
        problems.append(("tls_client_auth_subject_dn", "tls_client_auth needs exactly one of " + ", ".join(NAME_FIELDS)))
    if method != "tls_client_auth" and names:
        problems.append((names[0], "only for token_endpoint_auth_method tls_client_auth"))
    if method == "self_signed_tls_client_auth" and not public_keys(values.get("jwks")):
        problems.append(("jwks", "self_signed_tls_client_auth needs jwks with the public key of the client's certificate"))
    return problems
