"""Client credentials as presented (RFC 6749 §2.3.1): Basic with form-urlencoded id and secret, the body, or none."""

from __future__ import annotations

import base64

import pytest

from authserver.errors import InvalidClient, InvalidRequest
from authserver.protocol.client_auth import extract


def basic(raw: str | bytes) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return "Basic " + base64.b64encode(data).decode()


def test_basic_is_form_urldecoded() -> None:
    presented = extract(basic("my%3Aclient:s%3Ae+c%2Bret%25"), {})
    assert (presented.client_id, presented.secret, presented.method) == ("my:client", "s:e c+ret%", "client_secret_basic")


def test_secret_may_contain_a_raw_colon_and_the_scheme_is_case_insensitive() -> None:
    presented = extract(basic("client:a:b") .replace("Basic", "bAsIc"), {})
    assert (presented.client_id, presented.secret) == ("client", "a:b")


def test_empty_secret_is_presented_as_empty() -> None:
    assert extract(basic("client:"), {}).secret == ""


def test_body_credentials_and_none() -> None:
    post = extract(None, {"client_id": "c", "client_secret": "s"})
    assert (post.client_id, post.secret, post.method) == ("c", "s", "client_secret_post")
    public = extract(None, {"client_id": "c"})
    assert (public.secret, public.method) == (None, "none")


def test_repr_hides_the_secret() -> None:
    assert "s3cret" not in repr(extract(basic("c:s3cret"), {}))


@pytest.mark.parametrize(
    "header",
    [
        "Basic !!!", "Basic", "Basic ", basic("no-colon"), basic(":secret"), basic(b"\xff:x"), basic("a\x00b:x"),
        basic("a%00b:x"), basic("a:b%0A"), basic("a%7F:b"), "Bearer abc", "Digest x",
    ],
)
def test_malformed_basic_is_invalid_client_with_a_challenge(header: str) -> None:
    with pytest.raises(InvalidClient) as caught:
        extract(header, {})
    assert caught.value.headers["WWW-Authenticate"].startswith("Basic")


def test_two_methods_or_two_ids_are_invalid_request() -> None:
    with pytest.raises(InvalidRequest):
        extract(basic("c:s"), {"client_secret": "s"})
    with pytest.raises(InvalidRequest):
        extract(basic("c:s"), {"client_id": "other"})
    assert extract(basic("c:s"), {"client_id": "c"}).client_id == "c"


def test_no_credentials_at_all_is_invalid_client() -> None:
    with pytest.raises(InvalidClient):
        extract(None, {})
