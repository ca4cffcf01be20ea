"""RFC 8705 certificate handling: the forms proxies send, the x5t#S256 thumbprint, subject DN / SAN
matching (tls_client_auth) and registered-key matching (self_signed_tls_client_auth)."""

from __future__ import annotations

import base64
import hashlib
from types import SimpleNamespace
from typing import Any

import pytest
from joserfc.jwk import ECKey

from authserver.protocol import certificates
from authserver.protocol.certificates import MalformedCertificate
from authserver.settings import SettingsError, load_settings
from tests.support import certs

CA = certs.make_ca()
CLIENT = certs.issue(CA, "gauge-reader", sans=certs.client_sans())


def client(**names: Any) -> SimpleNamespace:
    return SimpleNamespace(**{f: names.get(f) for f in certificates.NAME_FIELDS})


def test_reads_every_form_proxies_send() -> None:
    der_b64 = base64.b64encode(CLIENT.der).decode()
    forms = [
        CLIENT.escaped,  # nginx $ssl_client_escaped_cert, AWS ALB
        CLIENT.pem,
        CLIENT.pem.replace("\n", " "),
        der_b64,  # Traefik, HAProxy ssl_c_der,base64
        f'By=spiffe://cmipro/api;Hash=abc;Cert="{CLIENT.escaped}";Subject="CN=gauge-reader,O=CMIPRO,C=HN"',  # Envoy XFCC
    ]
    for value in forms:
        assert certificates.parse_forwarded(value) == CLIENT.certificate, value[:40]


@pytest.mark.parametrize("value", [
    "garbage", "%ZZ", "%ff%fe", base64.b64encode(b"not a certificate").decode(),
    "-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----",
    CLIENT.pem + CLIENT.pem,  # a chain: one certificate only
    f'Cert="{CLIENT.escaped}",Cert="{CLIENT.escaped}"',
    "A" * 40_000,
])
def test_anything_else_is_malformed(value: str) -> None:
    with pytest.raises(MalformedCertificate) as caught:
        certificates.parse_forwarded(value)
    assert caught.value.error == "invalid_request"


def test_thumbprint_is_base64url_sha256_of_the_der() -> None:
    expected = base64.urlsafe_b64encode(hashlib.sha256(CLIENT.der).digest()).rstrip(b"=").decode()
    assert certificates.thumbprint(CLIENT.certificate) == expected
    assert "=" not in expected and len(expected) == 43


@pytest.mark.parametrize("registered", [
    "CN=gauge-reader,O=CMIPRO,C=HN",
    "cn=Gauge-Reader, o=cmipro, c=hn",
    "CN=gauge-reader,O=CMIPRO,C=HN".replace("gauge-reader", "gauge-reader  "),
    "2.5.4.3=gauge-reader,O=CMIPRO,C=HN",
])
def test_subject_dn_matches_per_rfc4514_normalisation(registered: str) -> None:
    assert certificates.tls_client_auth_matches(client(tls_client_auth_subject_dn=registered), CLIENT.certificate)


@pytest.mark.parametrize("registered", [
    "CN=gauge-reader,O=CMIPRO",  # fewer RDNs
    "C=HN,O=CMIPRO,CN=gauge-reader",  # another order is another name
    "CN=gauge-writer,O=CMIPRO,C=HN",
    "CN=gauge-reader+OU=x,O=CMIPRO,C=HN",
    "not a dn",
])
def test_other_subject_dns_do_not_match(registered: str) -> None:
    assert not certificates.tls_client_auth_matches(client(tls_client_auth_subject_dn=registered), CLIENT.certificate)


def test_sans_match_by_type() -> None:
    cert = CLIENT.certificate
    assert certificates.tls_client_auth_matches(client(tls_client_auth_san_dns="Gauges.CMIPRO.example"), cert)
    assert certificates.tls_client_auth_matches(client(tls_client_auth_san_uri="https://gauges.cmipro.example/client"), cert)
    assert certificates.tls_client_auth_matches(client(tls_client_auth_san_ip="192.0.2.10"), cert)
    assert certificates.tls_client_auth_matches(client(tls_client_auth_san_email="ops@CMIPRO.example"), cert)
    assert not certificates.tls_client_auth_matches(client(tls_client_auth_san_dns="other.cmipro.example"), cert)
    assert not certificates.tls_client_auth_matches(client(tls_client_auth_san_uri="https://gauges.cmipro.example/Client"), cert)
    assert not certificates.tls_client_auth_matches(client(tls_client_auth_san_ip="192.0.2.11"), cert)
    # A DNS name registered is not found among the URIs, and a certificate without SANs matches no SAN.
    assert not certificates.tls_client_auth_matches(client(tls_client_auth_san_dns="https://gauges.cmipro.example/client"), cert)
    assert not certificates.tls_client_auth_matches(client(tls_client_auth_san_dns="gauges.cmipro.example"), certs.issue(CA, "x").certificate)


def test_exactly_one_registered_name_counts() -> None:
    both = client(tls_client_auth_subject_dn="CN=gauge-reader,O=CMIPRO,C=HN", tls_client_auth_san_dns="gauges.cmipro.example")
    assert not certificates.tls_client_auth_matches(both, CLIENT.certificate)
    assert not certificates.tls_client_auth_matches(client(), CLIENT.certificate)


def test_self_signed_matches_a_registered_public_key() -> None:
    own = certs.self_signed("device-7")
    jwk = ECKey.import_key(own.key).as_dict(private=False)
    other = ECKey.generate_key("P-256").as_dict(private=False)
    assert certificates.self_signed_matches({"keys": [other, jwk]}, own.certificate)
    assert not certificates.self_signed_matches({"keys": [other]}, own.certificate)
    assert not certificates.self_signed_matches({"keys": [{"kty": "EC", "crv": "P-256", "x": "bad"}]}, own.certificate)
    assert not certificates.self_signed_matches(None, own.certificate)


def test_metadata_checks() -> None:
    ok = {"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_subject_dn": "CN=a,O=b"}
    assert certificates.check_metadata(ok) == []
    assert certificates.check_metadata({"token_endpoint_auth_method": "tls_client_auth"})
    assert certificates.check_metadata({**ok, "tls_client_auth_san_dns": "a.example"})
    assert certificates.check_metadata({"token_endpoint_auth_method": "client_secret_basic", "tls_client_auth_san_dns": "a.example"})
    assert certificates.check_metadata({"token_endpoint_auth_method": "tls_client_auth", "tls_client_auth_san_ip": "1.2.3"})
    assert certificates.check_metadata({"token_endpoint_auth_method": "self_signed_tls_client_auth"})
    jwk = ECKey.generate_key("P-256").as_dict(private=False)
    assert certificates.check_metadata({"token_endpoint_auth_method": "self_signed_tls_client_auth", "jwks": {"keys": [jwk]}}) == []


def test_mtls_settings_are_validated(tmp_path: Any) -> None:
    base = {"AUTHSERVER_SERVER__ISSUER": "https://auth.example"}
    assert not load_settings(base).mtls_enabled
    proxied = load_settings({**base, "AUTHSERVER_SECURITY__CLIENT_CERTIFICATE_HEADER": "X-SSL-Client-Cert",
                             "AUTHSERVER_SECURITY__TRUSTED_PROXIES": "10.0.0.0/8"})
    assert proxied.mtls_enabled
    bad = [
        {"AUTHSERVER_SECURITY__CLIENT_CERTIFICATE_HEADER": "X-SSL-Client-Cert"},  # no trusted proxies
        {"AUTHSERVER_SECURITY__CLIENT_CERTIFICATE_HEADER": "X SSL", "AUTHSERVER_SECURITY__TRUSTED_PROXIES": "10.0.0.1"},
        {"AUTHSERVER_SECURITY__CLIENT_CERTIFICATE_VERIFY_HEADER": "X-SSL-Client-Verify"},
        {"AUTHSERVER_SERVER__TLS_CERTFILE": str(tmp_path / "missing.pem"), "AUTHSERVER_SERVER__TLS_KEYFILE": str(tmp_path / "k")},
        {"AUTHSERVER_SERVER__TLS_CERTFILE": str(tmp_path / "missing.pem")},
        {"AUTHSERVER_SERVER__TLS_CLIENT_CERT_REQUIRED": "true"},
        {"AUTHSERVER_SERVER__MTLS_BASE_URL": "https://mtls.auth.example"},  # mTLS is off
    ]
    for extra in bad:
        with pytest.raises(SettingsError):
            load_settings({**base, **extra})
    cert, key = CLIENT.write(tmp_path, "server")
    served = load_settings({"AUTHSERVER_SERVER__TLS_CERTFILE": cert, "AUTHSERVER_SERVER__TLS_KEYFILE": key,
                            "AUTHSERVER_SERVER__TLS_CLIENT_CA_FILE": cert, "AUTHSERVER_SERVER__PORT": "8443"})
    assert served.server.issuer == "https://127.0.0.1:8443" and served.mtls_enabled


def test_discovery_aliases_follow_the_mtls_base_url() -> None:
    from authserver.endpoints.discovery import build_metadata

    settings = load_settings({
        "AUTHSERVER_SERVER__ISSUER": "https://auth.example", "AUTHSERVER_SECURITY__TRUSTED_PROXIES": "10.0.0.1",
        "AUTHSERVER_SECURITY__CLIENT_CERTIFICATE_HEADER": "X-SSL-Client-Cert",
        "AUTHSERVER_SERVER__MTLS_BASE_URL": "https://mtls.auth.example",
    })
    metadata = build_metadata(settings, ["client_credentials"])
    assert metadata["token_endpoint"] == "https://auth.example/token"
    assert metadata["mtls_endpoint_aliases"] == {
        "token_endpoint": "https://mtls.auth.example/token",
        "revocation_endpoint": "https://mtls.auth.example/revoke",
        "introspection_endpoint": "https://mtls.auth.example/introspect",
        "userinfo_endpoint": "https://mtls.auth.example/userinfo",
        "registration_endpoint": "https://mtls.auth.example/register",
        # /par authenticates the client as /token does (RFC 9126 §2, RFC 8705 §5).
        "pushed_authorization_request_endpoint": "https://mtls.auth.example/par",
    }
