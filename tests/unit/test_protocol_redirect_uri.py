"""Redirect URIs (RFC 6749 §3.1.2, RFC 9700 §4.1.3 exact match, RFC 8252 §7.3 loopback port, §8.4 schemes)."""

from __future__ import annotations

import pytest

from authserver.protocol.redirect_uri import is_acceptable_registration, matches, with_params

REGISTERED = ("https://app.example/cb", "http://127.0.0.1/native", "http://[::1]:8080/v6", "com.example.app:/oauth")


@pytest.mark.parametrize(
    "presented",
    ["https://app.example/cb", "http://127.0.0.1/native", "http://127.0.0.1:1/native", "http://127.0.0.1:65535/native",
     "http://[::1]/v6", "http://[::1]:5000/v6", "com.example.app:/oauth"],
)
def test_matching_for_a_public_client(presented: str) -> None:
    assert matches(REGISTERED, presented, loopback_any_port=True)


@pytest.mark.parametrize("presented", ["http://127.0.0.1:1/native", "http://127.0.0.1:5000/native", "http://[::1]/v6", "http://[::1]:5000/v6"])
def test_confidential_clients_get_no_loopback_port_flexibility(presented: str) -> None:
    assert not matches(REGISTERED, presented, loopback_any_port=False)
    assert matches(REGISTERED, "http://127.0.0.1/native", loopback_any_port=False)
    assert matches(REGISTERED, "http://[::1]:8080/v6", loopback_any_port=False)


@pytest.mark.parametrize(
    "presented",
    [
        "https://app.example/cb/", "https://app.example/CB", "https://APP.example/cb", "https://app.example:443/cb",
        "https://app.example/cb?", "https://app.example/cb#", "https://app.example/cb?a=1", "https://app.example/./cb",
        "https://app.example@evil.example/cb", "https://evil.example#@app.example/cb", "https://evil.example\\@app.example/cb",
        "https://app.example.evil.example/cb", "http://app.example/cb",
        "http://127.0.0.1:8080/other", "http://127.0.0.1:99999/native", "http://127.0.0.1:abc/native",
        "http://user@127.0.0.1:5000/native", "http://user:pw@127.0.0.1/native", "http://127.0.0.1.evil.example:80/native",
        "http://127.1:5000/native", "http://2130706433:5000/native", "http://localhost:5000/native", "https://127.0.0.1:5000/native",
        "http://127.0.0.1:5000/native?x=1", "http://127.0.0.1:5000/native#f", "http://[::1]:5000/native", "http://[::2]:5000/v6",
        "com.example.app:/oauth/", "com.evil.app:/oauth", "", "\x00",
        "http://127.0.0.1:5000/native?", "http://127.0.0.1:5000/native#", "http://127.0.0.1:/native", "http://127.0.0.1:0/native",
        "http://127.0.0.1:5000/Native", "http://127.0.0.1:5000/native/", "HTTP://127.0.0.1:5000/native", "http://[::1]:5000/v6?",
        "http://[0:0:0:0:0:0:0:1]:5000/v6", "http://127.0.0.1:5000//native",
    ],
)
def test_non_matching(presented: str) -> None:
    assert not matches(REGISTERED, presented, loopback_any_port=True)
    assert not matches(REGISTERED, presented, loopback_any_port=False)


def test_port_may_vary_only_for_registered_loopback_ips() -> None:
    assert not matches(("https://app.example:8443/cb",), "https://app.example:9443/cb", loopback_any_port=True)
    assert not matches(("http://localhost:8080/cb",), "http://localhost:9090/cb", loopback_any_port=True)


@pytest.mark.parametrize(
    ("uri", "ok"),
    [
        ("https://app.example/cb", True), ("https://app.example/cb?tenant=1", True), ("http://127.0.0.1/cb", True),
        ("http://[::1]:9/cb", True), ("http://localhost/cb", True), ("com.example.app:/oauth", True),
        ("http://app.example/cb", False), ("https://app.example/cb#x", False), ("https://app.example/cb#", False),
        ("/relative", False), ("javascript:alert(1)", False), ("data:text/html,x", False), ("https:///nohost", False),
        ("myapp:/oauth", False), ("http://[::1/cb", False),
        # wildcards, userinfo, fragments, unusual characters (RFC 9700 §4.1.1, RFC 6749 §3.1.2)
        ("https://*.app.example/cb", False), ("https://*/cb", False), ("http://*:8080/cb", False), ("https://app.example/*", True),
        ("https://user@app.example/cb", False), ("https://user:pw@app.example/cb", False), ("http://user@127.0.0.1/cb", False),
        ("https://app.example\\@evil.example/cb", False), ("https://app.example/cb#frag", False), ("com.example.app:/cb#", False),
        ("https://app.exa\nmple/cb", False), ("https://app.example/c b", False), ("https://app.example/cb\n", False),
        ("https://%2A.app.example/cb", False), ("https://app.example:99999/cb", False), ("https://app.example/cb" + "x" * 2000, False),
        # loopback http (RFC 8252 §7.3, §8.3) and only that
        ("http://127.0.0.1:8080/cb", True), ("http://localhost:8080/cb", True), ("http://127.0.0.2/cb", False),
        ("http://localhost.evil.example/cb", False), ("http://127.0.0.1.evil.example/cb", False), ("http://[::2]/cb", False),
        # private-use schemes: reverse DNS names contain a period (RFC 8252 §7.1)
        ("com.example.app:/oauth2redirect", True), ("com.example.app://cb", True), ("exampleapp:/cb", False),
        ("ftp://files.example/cb", False), ("file:///etc/passwd", False), ("vbscript:x", False),
    ],
)
def test_registration_rules(uri: str, ok: bool) -> None:
    assert is_acceptable_registration(uri) is ok


def test_with_params_keeps_the_registered_query_and_encodes() -> None:
    assert with_params("https://app.example/cb?tenant=hn", {"code": "a b", "state": "x&y=z"}) == (
        "https://app.example/cb?tenant=hn&code=a+b&state=x%26y%3Dz"
    )
    assert with_params("https://app.example/cb", {"error": "access_denied"}) == "https://app.example/cb?error=access_denied"
