"""RFC 6238 TOTP window and backup-code format, hashing and parsing (pure code, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pyotp

from authserver.mfa import backup_codes, totp

MOMENT = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)


def test_rfc6238_appendix_b_vector() -> None:
    # RFC 6238 Appendix B, SHA-1 secret "12345678901234567890", T = 59 s → 94287082 (8 digits); 6 digits: 287082.
    secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
    assert totp.matching_step(secret, "287082", now=datetime.fromtimestamp(59, tz=UTC)) == 1


def test_accepts_one_step_either_side_and_no_more() -> None:
    secret = totp.new_secret()
    current = totp.step_at(MOMENT)
    for offset in (-1, 0, 1):
        code = totp.code_at(secret, MOMENT + timedelta(seconds=30 * offset))
        assert totp.matching_step(secret, code, now=MOMENT) == current + offset
    for offset in (-2, 2):
        code = totp.code_at(secret, MOMENT + timedelta(seconds=30 * offset))
        if all(totp.code_at(secret, MOMENT + timedelta(seconds=30 * o)) != code for o in (-1, 0, 1)):
            assert totp.matching_step(secret, code, now=MOMENT) is None


def test_agrees_with_pyotp_and_rejects_malformed_input() -> None:
    secret = totp.new_secret()
    code = pyotp.TOTP(secret).at(MOMENT)
    assert totp.matching_step(secret, code, now=MOMENT) == totp.step_at(MOMENT)
    assert totp.matching_step(secret, f"{code[:3]} {code[3:]}", now=MOMENT) == totp.step_at(MOMENT)
    for bad in ("", "12345", "1234567", "abcdef", "١٢٣٤٥٦", "12345\x00"):
        assert totp.matching_step(secret, bad, now=MOMENT) is None


def test_secret_has_160_bits_and_uri_names_issuer_and_parameters() -> None:
    secret = totp.new_secret()
    assert len(secret) == 32  # base32: 5 bits per character
    uri = totp.provisioning_uri(secret, account_name="ana", issuer="CMIPRO")
    parts = urlsplit(uri)
    assert parts.scheme == "otpauth" and parts.netloc == "totp" and parts.path == "/CMIPRO:ana"
    query = parse_qs(parts.query)
    assert query["secret"] == [secret] and query["issuer"] == ["CMIPRO"]
    assert query["algorithm"] == ["SHA1"] and query["digits"] == ["6"] and query["period"] == ["30"]


def test_backup_codes_are_distinct_formatted_and_high_entropy() -> None:
    codes = backup_codes.generate(10)
    assert len(set(codes)) == 10
    for code in codes:
        assert len(code) == 14 and code[4] == code[9] == "-"
        assert all(ch in backup_codes.ALPHABET for ch in code.replace("-", ""))
    assert len(backup_codes.ALPHABET) ** backup_codes.CODE_CHARS >= 2**60


def test_backup_code_hash_is_salted_and_matching_is_forgiving() -> None:
    code = backup_codes.generate(1)[0]
    first, second = backup_codes.hash_code(code), backup_codes.hash_code(code)
    assert first != second and code not in first
    typed = code.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    normalised = backup_codes.normalise(typed)
    assert normalised is not None and backup_codes.matches(first, normalised)
    other = backup_codes.normalise(backup_codes.generate(1)[0])
    assert other is not None and (other == normalised or not backup_codes.matches(first, other))
    for bad in ("", "ABCD-EFGH", "ABCD-EFGH-JKMU", "ÀBCD-EFGH-JKMN", "x" * 200):
        assert backup_codes.normalise(bad) is None
    assert not backup_codes.matches("garbage", normalised)
