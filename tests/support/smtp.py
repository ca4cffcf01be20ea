"""A real SMTP server for the mail tests (aiosmtpd in its own thread): it keeps every message it accepts,
parsed, so a test reads the mail a person would get."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ipaddress
import re
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.servers import free_port


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None

    def part(self, subtype: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == f"text/{subtype}":
                return str(part.get_content())
        raise AssertionError(f"no text/{subtype} part")

    def link(self, path: str) -> str:
        match = re.search(rf"https?://[^\s\"<>]+{re.escape(path)}[^\s\"<>]*", self.part("plain"))
        assert match, f"no {path} link in the mail"
        return match.group(0)


@dataclass
class Inbox:
    host: str
    port: int
    credentials: tuple[str, str] | None = None
    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def env(self, **extra: str) -> dict[str, str]:
        """Settings for an authserver that sends here."""
        values = {
            "AUTHSERVER_MAIL__HOST": self.host, "AUTHSERVER_MAIL__PORT": str(self.port),
            "AUTHSERVER_MAIL__SECURITY": "none", "AUTHSERVER_MAIL__SENDER": "CMIPRO <no-reply@cmipro.example>",
        }
        if self.credentials:
            values["AUTHSERVER_MAIL__USERNAME"], values["AUTHSERVER_MAIL__PASSWORD"] = self.credentials
        values.update(extra)
        return values

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if address in m.rcpt_tos]

    async def wait_for(self, address: str, count: int = 1, timeout: float = 15.0) -> list[Received]:
        """For a server in another thread or process: wait until ``count`` mails reached ``address``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.to(address)) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(self.to(address))} of {count} mails reached {address}")
            await asyncio.sleep(0.05)
        return self.to(address)


class _Handler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's naming
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data if isinstance(session.auth_data, str) else None
        with self.inbox.lock:
            self.inbox.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message, login))
        return "250 Message accepted"


def _authenticator(credentials: tuple[str, str]) -> Any:
    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == credentials
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode() if ok else None)

    return authenticate


def self_signed_certificate(directory: Path) -> Path:
    """A certificate for 127.0.0.1 and its key, in one PEM file (also usable as the trusted CA file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / "smtp-test.pem"
    path.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def start_smtp(credentials: tuple[str, str] | None = None, *, certificate: Path | None = None) -> tuple[Inbox, Controller]:
    """Plain SMTP, or with ``certificate``: STARTTLS required, and AUTH (``credentials``) only after it."""
    inbox = Inbox("127.0.0.1", free_port(), credentials)
    options: dict[str, Any] = {}
    if certificate is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificate)
        options = {"tls_context": context, "require_starttls": True}
    if credentials:
        options |= {"authenticator": _authenticator(credentials), "auth_required": True}
    controller = Controller(_Handler(inbox), hostname=inbox.host, port=inbox.port, **options)
    controller.start()
    return inbox, controller


def smtp_server(credentials: tuple[str, str] | None = None, *, certificate: Path | None = None) -> Iterator[Inbox]:
    inbox, controller = start_smtp(credentials, certificate=certificate)
    try:
        yield inbox
    finally:
        controller.stop()
