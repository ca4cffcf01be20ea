"""Property tests: the pure parsers never fail with anything but their own errors, whatever the input."""

from __future__ import annotations

import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from authserver.errors import InvalidClient, InvalidRequest, InvalidScope
from authserver.protocol.client_auth import extract
from authserver.protocol.params import parse_urlencoded
from authserver.protocol.redirect_uri import is_acceptable_registration, matches
from authserver.protocol.scopes import parse_scope

FAST = settings(max_examples=300, deadline=None)


@FAST
@given(st.binary(max_size=300))
def test_form_parser_only_raises_invalid_request(body: bytes) -> None:
    try:
        params = parse_urlencoded(body)
    except InvalidRequest:
        return
    assert all("\x00" not in k + v and v for k, v in params.items())


@FAST
@given(st.text(max_size=200))
def test_redirect_matching_never_raises(uri: str) -> None:
    assert isinstance(matches(("https://app.example/cb", "http://127.0.0.1/cb"), uri, loopback_any_port=True), bool)
    assert isinstance(is_acceptable_registration(uri), bool)


@FAST
@given(st.text(max_size=100))
def test_scope_parser_only_raises_invalid_scope(value: str) -> None:
    try:
        parse_scope(value)
    except InvalidScope:
        pass


@FAST
@given(st.binary(max_size=120), st.sampled_from(["Basic ", "basic ", "Bearer ", ""]))
def test_client_auth_only_raises_oauth_errors(raw: bytes, scheme: str) -> None:
    for header in (scheme + base64.b64encode(raw).decode(), scheme + raw.decode("latin-1")):
        try:
            presented = extract(header, {})
        except (InvalidClient, InvalidRequest):
            continue
        assert presented.client_id and all(ord(c) >= 0x20 for c in presented.client_id)
