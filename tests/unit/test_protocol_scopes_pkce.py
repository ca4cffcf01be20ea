"""Scopes (RFC 6749 §3.3) and PKCE S256 (RFC 7636 §4.1-4.6, Appendix B)."""

from __future__ import annotations

import pytest

from authserver.errors import InvalidScope
from authserver.protocol.pkce import is_valid_s256_challenge, is_valid_verifier, verify_s256
from authserver.protocol.scopes import format_scope, parse_scope

# RFC 7636 Appendix B
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_scope_parsing_dedupes_keeps_order_and_ignores_extra_spaces() -> None:
    assert parse_scope("openid  profile openid read:levels ") == ["openid", "profile", "read:levels"]
    assert parse_scope(None) == [] and parse_scope("") == [] and parse_scope("   ") == []


@pytest.mark.parametrize("value", ['a"b', "a\\b", "a\tb", "é", "a\x00", "a\x7f"])
def test_malformed_scope_tokens_are_invalid_scope(value: str) -> None:
    with pytest.raises(InvalidScope):
        parse_scope(value)


def test_scope_is_case_sensitive_and_formats_sets_sorted() -> None:
    assert parse_scope("OpenID openid") == ["OpenID", "openid"]
    assert format_scope({"b", "a"}) == "a b" and format_scope(["b", "a"]) == "b a"


def test_rfc7636_appendix_b_vector() -> None:
    assert verify_s256(VERIFIER, CHALLENGE)
    assert is_valid_s256_challenge(CHALLENGE)


@pytest.mark.parametrize(
    "verifier",
    [VERIFIER[:-1], VERIFIER + "A", "a" * 42, "a" * 129, VERIFIER[:-1] + "=", VERIFIER[:-1] + "+", VERIFIER[:-1] + " ", ""],
)
def test_other_or_malformed_verifiers_fail(verifier: str) -> None:
    assert not verify_s256(verifier, CHALLENGE)


def test_verifier_alphabet_and_length() -> None:
    assert is_valid_verifier("a" * 43) and is_valid_verifier("-._~" * 32)
    assert not is_valid_verifier("a" * 42) and not is_valid_verifier("a" * 129) and not is_valid_verifier("é" * 43)


@pytest.mark.parametrize("challenge", [CHALLENGE[:-1], CHALLENGE + "A", CHALLENGE[:-1] + "=", CHALLENGE[:-1] + ".", CHALLENGE[:-1] + "/", ""])
def test_s256_challenge_is_43_base64url_characters(challenge: str) -> None:
    assert not is_valid_s256_challenge(challenge)


def test_plain_pkce_cannot_pass_s256() -> None:
    """A client that sends the verifier as the challenge (plain) never matches under S256."""
    assert not verify_s256(VERIFIER, VERIFIER)
