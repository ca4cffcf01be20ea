"""The form parser's fast path decodes exactly as urllib.parse.parse_qsl (keep_blank_values, strict UTF-8)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from authserver.errors import InvalidRequest
from authserver.protocol.params import parse_pairs, parse_urlencoded

FORM_CHARS = st.text(alphabet="ab=&%+:;3AF2E0x ", max_size=40)


@given(FORM_CHARS)
def test_same_result_as_parse_qsl(text: str) -> None:
    try:
        expected: dict[str, str] | type[Exception] = parse_pairs(parse_qsl(text, keep_blank_values=True, errors="strict"))
    except (InvalidRequest, UnicodeDecodeError, ValueError):
        expected = InvalidRequest
    if expected is InvalidRequest:
        with pytest.raises(InvalidRequest):
            parse_urlencoded(text.encode())
    else:
        assert parse_urlencoded(text.encode()) == expected


def test_escapes_and_plus_are_decoded() -> None:
    assert parse_urlencoded(b"grant_type=client_credentials&scope=read%3Astations+read%3Alevels") == {
        "grant_type": "client_credentials", "scope": "read:stations read:levels",
    }


def test_bad_utf8_and_too_many_fields_are_invalid_request() -> None:
    with pytest.raises(InvalidRequest):
        parse_urlencoded(b"a=%ff")
    with pytest.raises(InvalidRequest):
        parse_urlencoded(b"&".join(b"a%d=1" % i for i in range(200)))
