"""The mail sender (authserver/mail.py) against a real SMTP server: multipart/alternative in Spanish and
English, escaping, SMTP AUTH, and the settings that switch mail on and off."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import pytest

from authserver.mail import MailDisabled, Mailer
from authserver.settings import MailSettings, Secret, SettingsError, load_settings
from authserver.web.pages import create_environment
from tests.support.smtp import Inbox, self_signed_certificate, smtp_server


def mailer_for(inbox: Inbox, **overrides: object) -> Mailer:
    values: dict[str, object] = {
        "host": inbox.host, "port": inbox.port, "security": "none", "sender": "CMIPRO <no-reply@cmipro.example>",
    }
    if inbox.credentials:
        values["security"] = "starttls"
        values["username"], values["password"] = inbox.credentials[0], Secret(inbox.credentials[1])
    values.update(overrides)
    return Mailer(MailSettings(**values), create_environment())  # type: ignore[arg-type]


@pytest.fixture
def auth_inbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Inbox]:
    """STARTTLS required, then AUTH; the client trusts the test certificate through SSL_CERT_FILE."""
    certificate = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate))
    yield from smtp_server(credentials=("authserver", "smtp-secret"), certificate=certificate)


@pytest.mark.parametrize(("locale", "subject", "greeting"), [
    ("es", "Restablecer tu contraseña de CMIPRO", "Hola, ana:"),
    ("en", "Reset your CMIPRO password", "Hello ana,"),
])
async def test_reset_mail_is_multipart_alternative_in_the_persons_language(
    inbox: Inbox, locale: str, subject: str, greeting: str
) -> None:
    mailer = mailer_for(inbox)
    link = "http://testserver/password/reset?token=pr_abc"
    await mailer.send(mailer.compose("ana@example.org", "password_reset", locale=locale, username="ana", link=link, minutes=30))
    [mail] = inbox.to("ana@example.org")
    message = mail.message
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["Subject"] == subject and message["Content-Language"] == locale
    assert message["From"] == "CMIPRO <no-reply@cmipro.example>" and message["To"] == "ana@example.org"
    assert message["Message-ID"].endswith("@cmipro.example>") and message["Date"]
    assert mail.mail_from == "no-reply@cmipro.example"
    assert greeting in mail.part("plain") and link in mail.part("plain")
    assert f'href="{link}"' in mail.part("html") and greeting in mail.part("html")
    assert "30" in mail.part("plain")


async def test_html_part_escapes_what_people_typed(inbox: Inbox) -> None:
    mailer = mailer_for(inbox)
    await mailer.send(mailer.compose(
        "eve@example.org", "password_reset", locale="en", username='<script>alert(1)</script>"', link="http://x/password/reset?token=a&b", minutes=30,
    ))
    [mail] = inbox.to("eve@example.org")
    assert "<script>" not in mail.part("html") and "&lt;script&gt;" in mail.part("html")
    assert 'href="http://x/password/reset?token=a&amp;b"' in mail.part("html")


def test_a_recipient_with_a_line_break_is_refused(inbox: Inbox) -> None:
    with pytest.raises(ValueError):
        mailer_for(inbox).compose("a@example.org\r\nBcc: b@example.org", "password_reset", locale="en", username="a", link="l", minutes=1)


async def test_starttls_then_smtp_auth_with_the_configured_credentials(auth_inbox: Inbox) -> None:
    mailer = mailer_for(auth_inbox)
    await mailer.send(mailer.compose("ana@example.org", "password_reset", locale="es", username="ana", link="l", minutes=30))
    [mail] = auth_inbox.to("ana@example.org")
    assert mail.login == "authserver"


async def test_starttls_mode_refuses_a_server_without_it(inbox: Inbox) -> None:
    """security = starttls never falls back to plain text (aiosmtplib's default would)."""
    mailer = mailer_for(inbox, security="starttls")
    with pytest.raises(aiosmtplib.SMTPException):
        await mailer.send(mailer.compose("ana@example.org", "password_reset", locale="es", username="ana", link="l", minutes=30))
    assert inbox.to("ana@example.org") == []


async def test_a_failed_delivery_is_logged_not_raised(auth_inbox: Inbox, caplog: pytest.LogCaptureFixture) -> None:
    mailer = mailer_for(auth_inbox, password=Secret("wrong"))
    with caplog.at_level(logging.ERROR, logger="authserver.mail"):
        mailer.send_later(mailer.compose("ana@example.org", "password_reset", locale="es", username="ana", link="l", minutes=30))
        await mailer.drain()
    assert auth_inbox.to("ana@example.org") == []
    assert any("mail delivery failed" in r.getMessage() for r in caplog.records)
    assert all("wrong" not in r.getMessage() for r in caplog.records)


async def test_mail_is_off_without_a_host() -> None:
    mailer = Mailer(MailSettings(), create_environment())
    assert not mailer.enabled
    with pytest.raises(MailDisabled):
        await mailer.send(mailer.compose("a@example.org", "password_reset", locale="es", username="a", link="l", minutes=1))


@pytest.mark.parametrize(("env", "message"), [
    ({"AUTHSERVER_MAIL__HOST": "smtp.example", "AUTHSERVER_MAIL__SECURITY": "ssl"}, "mail.security"),
    ({"AUTHSERVER_MAIL__HOST": "smtp.example"}, "mail.sender"),
    ({"AUTHSERVER_MAIL__HOST": "smtp.example", "AUTHSERVER_MAIL__SENDER": "a@b\nBcc: c@d"}, "mail.sender"),
    ({"AUTHSERVER_MAIL__USERNAME": "user"}, "mail.username"),
    ({"AUTHSERVER_MAIL__PORT": "0"}, "mail.port"),
    ({"AUTHSERVER_SELF_SERVICE__RESET_TOKEN_TTL": "10"}, "self_service.reset_token_ttl"),
    ({"AUTHSERVER_CORS__ALLOWED_ORIGINS": '["*"]'}, "cors.allowed_origins"),
    ({"AUTHSERVER_CORS__ALLOWED_ORIGINS": '["https://app.example/path"]'}, "cors.allowed_origins"),
])
def test_settings_are_validated(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace(".", r"\.")):
        load_settings(env)


def test_defaults_mail_off_reset_links_last_thirty_minutes() -> None:
    settings = load_settings({})
    assert not settings.mail.enabled and settings.mail.security == "starttls"
    assert settings.self_service.reset_token_ttl == 1800
    assert settings.cors.allowed_origins == [] and settings.cors.from_redirect_uris and not settings.cors.introspection
