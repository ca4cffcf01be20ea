"""RFC 6749 §3.1 parameter parsing: strict UTF-8, no duplicates, no NUL, bounded; empty values are omitted."""

from __future__ import annotations

import pytest

from authserver.errors import InvalidRequest
from authserver.protocol.params import MAX_PARAMS, MAX_VALUE_CHARS, parse_query, parse_urlencoded


def test_plain_form_is_decoded() -> None:
    assert parse_urlencoded(b"a=1&b=x+y&c=%C3%A9&d=%2B") == {"a": "1", "b": "x y", "c": "é", "d": "+"}


def test_empty_values_are_omitted_and_do_not_count_as_duplicates() -> None:
    assert parse_urlencoded(b"a=&b=2&a=1") == {"b": "2", "a": "1"}


@pytest.mark.parametrize(
    "body",
    [
        b"a=1&a=2",
        b"a=%ff",
        b"%ff=1",
        b"a=%C3",
        b"a=\xff",
        b"a=\xc3\xa9",  # raw non-ASCII bytes: only percent-encoding is form encoding
        b"a=%00",
        b"a%00=1",
        b"a=" + b"x" * (MAX_VALUE_CHARS + 1),
        b"&".join(b"p%d=1" % i for i in range(MAX_PARAMS + 1)),
        b"n" * 129 + b"=1",
    ],
)
def test_malformed_input_is_invalid_request(body: bytes) -> None:
    with pytest.raises(InvalidRequest):
        parse_urlencoded(body)


def test_error_descriptions_never_echo_hostile_names() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_urlencoded(b'%22%5C%0Aevil=1&%22%5C%0Aevil=2')
    assert '"' not in caught.value.description and "\\" not in caught.value.description


def test_query_uses_the_same_rules() -> None:
    assert parse_query(b"client_id=abc&state=%2F%3F") == {"client_id": "abc", "state": "/?"}
    with pytest.raises(InvalidRequest):
        parse_query(b"client_id=a&client_id=b")


def test_limits_are_generous_enough_for_long_state() -> None:
    state = "s" * 2048
    assert parse_urlencoded(f"state={state}".encode())["state"] == state
