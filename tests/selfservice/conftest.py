"""Self-service tests: a real SMTP server (aiosmtpd) for the session, emptied for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.smtp import Inbox, smtp_server


@pytest.fixture(scope="session")
def smtp_session() -> Iterator[Inbox]:
    yield from smtp_server()


@pytest.fixture
def inbox(smtp_session: Inbox) -> Inbox:
    with smtp_session.lock:
        smtp_session.messages.clear()
    return smtp_session
