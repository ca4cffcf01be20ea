"""Input patterns match the whole value: Python's ``$`` also matches before a final newline, so every
validation uses ``fullmatch`` and a trailing ``\\n`` is refused."""

from __future__ import annotations

import re

import pytest

from authserver.admin import models
from authserver.admin import service as admin_service
from authserver.admin.validation import AdminError, Body
from authserver.errors import InvalidRequest, InvalidScope
from authserver.middleware.request_id import SANE_REQUEST_ID
from authserver.protocol.pkce import is_valid_s256_challenge, is_valid_verifier
from authserver.protocol.scopes import parse_scope
from authserver.storage.sql.clients import CLIENT_ID

VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_pkce_values_with_a_trailing_newline_are_malformed() -> None:
    assert is_valid_verifier(VERIFIER) and is_valid_s256_challenge(CHALLENGE)
    assert not is_valid_verifier(VERIFIER + "\n")
    assert not is_valid_s256_challenge(CHALLENGE + "\n")


def test_scope_token_with_a_trailing_newline_is_malformed() -> None:
    with pytest.raises(InvalidScope):
        parse_scope("openid read:levels\n")


def test_error_description_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(ValueError):
        InvalidRequest("looks fine\n")


@pytest.mark.parametrize(
    ("pattern", "value"),
    [
        (SANE_REQUEST_ID, "req-1"), (CLIENT_ID, "client-1"), (admin_service.EVENT_NAME, "login"),
    ],
)
def test_identifier_patterns_refuse_a_trailing_newline(pattern: re.Pattern[str], value: str) -> None:
    assert pattern.fullmatch(value)
    body = Body({"value": value + "\n"}, allowed={"value"})
    assert body.string("value", pattern=pattern) is None and body.errors
    with pytest.raises(AdminError):
        body.done()


@pytest.mark.parametrize(
    ("model", "field", "value"),
    [
        (models.ClientCreate, "client_id", "client-1"), (models.UserCreate, "username", "ana"),
        (models.ClientCreate, "audience", ["https://api.example"]),
    ],
)
def test_admin_model_fields_refuse_a_trailing_newline(model: type[models.Strict], field: str, value: object) -> None:
    base: dict[str, object] = {"name": "x", "client_type": "public", "grant_types": []} if model is models.ClientCreate else {"username": "ana"}
    models.read(model, {**base, field: value})
    bad = [value[0] + "\n"] if isinstance(value, list) else f"{value}\n"
    with pytest.raises(AdminError) as refused:
        models.read(model, {**base, field: bad})
    assert refused.value.errors[0]["field"].startswith(field)
