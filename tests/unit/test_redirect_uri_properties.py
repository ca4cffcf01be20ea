"""Property tests for redirect URI registration (RFC 6749 §3.1.2, RFC 9700 §4.1, RFC 8252 §7.1, §7.3, §8.3)
and for the matcher: exact comparison, with only a loopback IP literal's port free, for public clients only."""

from __future__ import annotations

from urllib.parse import urlsplit

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from authserver.protocol.redirect_uri import is_acceptable_registration, matches

FAST = settings(max_examples=400, deadline=None)

LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
DNS_HOST = st.lists(LABEL, min_size=1, max_size=3).map(".".join)
HOSTS = st.one_of(
    DNS_HOST,
    st.sampled_from(["127.0.0.1", "[::1]", "localhost", "127.0.0.2", "[::2]", "localhost.evil.example", "10.0.0.1"]),
    DNS_HOST.map(lambda h: "*." + h),
    st.just("*"),
)
# A scheme starts with a letter (RFC 3986 §3.1); reverse-DNS private-use schemes are dotted labels.
SCHEME_LABEL = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)
SCHEMES = st.one_of(st.sampled_from(["https", "http"]), st.lists(SCHEME_LABEL, min_size=1, max_size=3).map(".".join))
PATH = st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789-._~", max_size=6), max_size=3).map(lambda parts: "/" + "/".join(parts))
QUERY = st.one_of(st.none(), st.text("abcdefghijklmnopqrstuvwxyz0123456789=&", max_size=10))
PORT = st.one_of(st.none(), st.integers(min_value=1, max_value=65535))
LOOPBACK_HTTP = {"127.0.0.1", "[::1]", "localhost"}


def _uri(scheme: str, host: str, port: int | None, path: str, query: str | None, userinfo: str | None = None, fragment: str | None = None) -> str:
    authority = f"{userinfo + '@' if userinfo is not None else ''}{host}{':' + str(port) if port is not None else ''}"
    return f"{scheme}://{authority}{path}{'?' + query if query is not None else ''}{'#' + fragment if fragment is not None else ''}"


@FAST
@given(
    SCHEMES, HOSTS, PORT, PATH, QUERY,
    st.one_of(st.none(), st.sampled_from(["user", "user:pw", ""])),
    st.one_of(st.none(), st.text("abc/", max_size=4)),
)
def test_registration_follows_the_rule(
    scheme: str, host: str, port: int | None, path: str, query: str | None, userinfo: str | None, fragment: str | None
) -> None:
    uri = _uri(scheme, host, port, path, query, userinfo, fragment)
    if userinfo is not None or fragment is not None or "*" in host:
        expected = False
    elif scheme == "https":
        expected = True
    elif scheme == "http":
        expected = host in LOOPBACK_HTTP
    else:
        expected = "." in scheme  # a private-use scheme is a reverse domain name
    assert is_acceptable_registration(uri) is expected, uri


@FAST
@given(st.text(max_size=120))
def test_whatever_is_accepted_has_no_fragment_userinfo_wildcard_or_unsafe_scheme(uri: str) -> None:
    if not is_acceptable_registration(uri):
        return
    parts = urlsplit(uri)
    assert "#" not in uri and "@" not in parts.netloc and "*" not in parts.netloc
    assert all("\x21" <= c <= "\x7e" for c in uri) and "\\" not in uri
    assert (
        (parts.scheme == "https" and parts.hostname)
        or (parts.scheme == "http" and parts.hostname in {"127.0.0.1", "::1", "localhost"})
        or (parts.scheme not in {"http", "https"} and "." in parts.scheme)
    )
    # adding a fragment or userinfo to an acceptable URI always makes it unacceptable
    assert not is_acceptable_registration(uri + "#")
    if parts.netloc:
        assert not is_acceptable_registration(uri.replace("//", "//someone@", 1))


@FAST
@given(st.sampled_from(["127.0.0.1", "[::1]"]), PORT, PORT, PATH, QUERY)
def test_loopback_ip_port_varies_for_public_clients_only(host: str, registered_port: int | None, port: int | None, path: str, query: str | None) -> None:
    registered = _uri("http", host, registered_port, path, query)
    presented = _uri("http", host, port, path, query)
    assert matches((registered,), presented, loopback_any_port=True)
    assert matches((registered,), presented, loopback_any_port=False) is (presented == registered)


@FAST
@given(
    st.sampled_from(["127.0.0.1", "[::1]"]), PORT, PATH, QUERY,
    st.sampled_from(["127.0.0.1", "[::1]", "localhost", "127.0.0.2"]), PORT, PATH, QUERY, st.sampled_from(["http", "https"]),
)
def test_loopback_matching_is_exact_apart_from_the_port(
    host: str, reg_port: int | None, path: str, query: str | None,
    other_host: str, port: int | None, other_path: str, other_query: str | None, scheme: str,
) -> None:
    assume((scheme, other_host, other_path, other_query) != ("http", host, path, query))
    registered = _uri("http", host, reg_port, path, query)
    presented = _uri(scheme, other_host, port, other_path, other_query)
    assert not matches((registered,), presented, loopback_any_port=True)


@FAST
@given(st.lists(st.one_of(DNS_HOST.map(lambda h: f"https://{h}/cb"), st.just("http://localhost:8080/cb"), st.just("com.example.app:/cb")), min_size=1, max_size=3),
       st.text(max_size=60), st.booleans())
def test_anything_but_a_loopback_ip_compares_as_a_plain_string(registered: list[str], presented: str, public: bool) -> None:
    assert matches(tuple(registered), presented, loopback_any_port=public) is (presented in registered)


@FAST
@given(st.lists(st.text(max_size=40), max_size=3), st.text(max_size=60))
def test_without_port_flexibility_matching_is_membership(registered: list[str], presented: str) -> None:
    assert matches(tuple(registered), presented, loopback_any_port=False) is (presented in registered)
