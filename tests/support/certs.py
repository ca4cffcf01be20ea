"""Real X.509 certificates for mutual-TLS tests, made with cryptography: a client CA, a server
certificate for 127.0.0.1, client certificates with a subject DN and SANs, self-signed, expired and
from another CA. Written as PEM files when a TLS server or httpx needs paths."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass
class Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def escaped(self) -> str:
        """As nginx's $ssl_client_escaped_cert sends it: the PEM, URL-encoded."""
        return quote(self.pem, safe="")

    def write(self, folder: Path, name: str) -> tuple[str, str]:
        cert, key = folder / f"{name}.pem", folder / f"{name}.key"
        cert.write_text(self.pem)
        key.write_bytes(self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ))
        return str(cert), str(key)


def name(common_name: str, organisation: str = "CMIPRO", country: str = "HN") -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, country),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _build(subject: x509.Name, key: ec.EllipticCurvePrivateKey, issuer: Issued | None, *, ca: bool,
           sans: list[x509.GeneralName] | None = None, not_after: datetime | None = None,
           server: bool = False) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.certificate.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=2))
        .not_valid_after(not_after or now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                          data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                          encipher_only=False, decipher_only=False), critical=True,
        )
    else:
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    return builder.sign(issuer.key if issuer else key, hashes.SHA256())


def make_ca(common_name: str = "CMIPRO Test Client CA") -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    return Issued(_build(name(common_name), key, None, ca=True), key)


def issue(ca: Issued, common_name: str, *, sans: list[x509.GeneralName] | None = None,
          not_after: datetime | None = None, server: bool = False) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    return Issued(_build(name(common_name), key, ca, ca=False, sans=sans, not_after=not_after, server=server), key)


def self_signed(common_name: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    return Issued(_build(name(common_name), key, None, ca=False), key)


def server_certificate(ca: Issued) -> Issued:
    return issue(ca, "127.0.0.1", sans=[x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")], server=True)


def client_sans() -> list[x509.GeneralName]:
    return [
        x509.DNSName("gauges.cmipro.example"),
        x509.UniformResourceIdentifier("https://gauges.cmipro.example/client"),
        x509.IPAddress(ipaddress.ip_address("192.0.2.10")),
        x509.RFC822Name("ops@cmipro.example"),
    ]


def expired(ca: Issued, common_name: str) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder().subject_name(name(common_name)).issuer_name(ca.certificate.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=30)).not_valid_after(now - timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)
