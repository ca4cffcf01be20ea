"""Hostile input on every endpoint (RFC 6749 §3.1, §10.14; ASVS 5 §1.2, §15.3.7, §16.5):
missing, duplicated, oversized, non-UTF-8, NUL, injection-like values, wrong content type, wrong method.

Every answer is a 4xx with the channel's error (JSON for /token and /userinfo, an HTML page for
the browser endpoints), never a 5xx, and a rejected request changes no state.
"""

from __future__ import annotations

import base64

import httpx
import jwt
import pytest

from authserver.services import Services
from tests.support.apps import auth_params, location
from tests.support.factories import AppClient, Person, authorize, form_field, make_client, make_user, pkce_pair, redeem

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BIG = b"a=" + b"x" * (64 * 1024 + 10)
INJECTIONS = [
    "' OR '1'='1", "\"; DROP TABLE clients; --", "<script>alert(1)</script>", "${jndi:ldap://x}", "{{7*7}}",
    "../../etc/passwd", "%s%s%n", "\u202e\u0000", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\r\nSet-Cookie: a=b",
]
BROWSER_ENDPOINTS = ["/authorize", "/login", "/consent"]


def assert_page(response: httpx.Response, status: int = 400) -> None:
    assert response.status_code == status, (response.status_code, response.text[:200])
    assert "location" not in response.headers
    assert "set-cookie" not in response.headers


def assert_json_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, (response.status_code, response.text[:200])
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


# --- browser endpoints ---------------------------------------------------------------------------


MALFORMED_QUERIES = [
        "",
        "client_id=%ff",
        "client_id=a%00b",
        "client_id=a&client_id=b",
        "client_id=" + "x" * 5000,
        "client_id=%",
        "%ff=1",
        "&&&==&",
        "a=" + "&a=".join("1" for _ in range(200)),
    ]


@pytest.mark.parametrize("path", BROWSER_ENDPOINTS)
async def test_malformed_queries_on_browser_endpoints_are_error_pages(http: httpx.AsyncClient, path: str) -> None:
    for query in MALFORMED_QUERIES:
        response = await http.get(f"{path}?{query}" if query else path)
        assert_page(response)
        assert response.headers["content-type"].startswith("text/html"), query


@pytest.mark.parametrize("path", BROWSER_ENDPOINTS)
async def test_browser_endpoints_refuse_other_methods_and_bodies(http: httpx.AsyncClient, path: str) -> None:
    assert_page(await http.request("PUT", path), 405)
    assert_page(await http.post(path, json={"client_id": "x"}))
    assert_page(await http.post(path, content=b"i=%ff&csrf=%00", headers=FORM))
    assert (await http.post(path, content=BIG, headers=FORM)).status_code == 413


async def test_injection_like_values_in_the_authorization_request(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    challenge = pkce_pair()[1]
    for value in INJECTIONS:
        await _one_injection(http, client, challenge, value)


async def _one_injection(http: httpx.AsyncClient, client: AppClient, challenge: str, value: str) -> None:
    assert_page(await http.get("/authorize", params=auth_params(value, challenge)))
    assert_page(await http.get("/authorize", params=auth_params(client.client_id, challenge, redirect_uri=value)))
    # after the client is known, hostile values either round-trip intact (state) or are refused by redirect
    response = await http.get("/authorize", params=auth_params(client.client_id, challenge, state=value, scope=value))
    if "\x00" in value:
        assert_page(response)
    else:
        target = location(response)
        assert target.startswith("https://app.example/callback?")
        assert "\r" not in target and "\n" not in target and "<" not in target


async def test_long_state_and_nonce_are_echoed_intact(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    state = ("sT4-~._" * 60)[:400] + "/?&=+ %é"
    nonce = "n" * 384
    params, verifier = await authorize(http, client, user, state=state, extra={"nonce": nonce, "unknown_param": "ignored"})
    assert params["state"] == state
    body = (await redeem(http, client, params["code"], verifier)).json()
    assert jwt.decode(body["id_token"], options={"verify_signature": False})["nonce"] == nonce


async def test_authorization_request_by_post_and_unsupported_features(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    challenge = pkce_pair()[1]
    posted = await http.post("/authorize", data=auth_params(client.client_id, challenge, prompt="none"))
    assert "error=login_required" in location(posted)
    for extra, error in (
        ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
        ({"request_uri": "https://app.example/req"}, "request_uri_not_supported"),
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": ""}, "invalid_request"),
        ({"response_mode": "fragment"}, "invalid_request"),
        ({"scope": "openid admin"}, "invalid_scope"),
        ({"scope": "openid bad\\scope"}, "invalid_scope"),
        ({"resource": "https://evil.example"}, "invalid_target"),
        ({"nonce": "n" * 513}, "invalid_request"),
        ({"id_token_hint": "abc", "prompt": "none"}, "invalid_request"),  # OIDC Core §3.1.2.1: verified, not ignored
    ):
        target = location(await http.get("/authorize", params=auth_params(client.client_id, challenge, **extra)))
        assert f"error={error}" in target and "state=st-1" in target and "iss=" in target, (extra, target)
        assert "code=" not in target


async def test_unknown_and_oidc_parameters_are_accepted(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    extra = {
        "display": "popup", "claims_locales": "es", "acr_values": "urn:x", "login_hint": "<b>x</b>", "ui_locales": "zz",
        "foo": "bar", "prompt": "none",
    }
    target = location(await http.get("/authorize", params=auth_params(client.client_id, pkce_pair()[1], **extra)))
    assert "error=login_required" in target


async def test_hostile_interaction_ids_and_csrf(http: httpx.AsyncClient, services: Services) -> None:
    for value in INJECTIONS + ["x" * 500]:
        assert_page(await http.get("/login", params={"i": value}))
        assert_page(await http.get("/consent", params={"i": value}))
        assert_page(await http.post("/login", data={"i": value, "csrf": value, "username": value, "password": value}))


async def test_hostile_credentials_on_login_do_not_sign_in(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    user = await make_user(services)
    page = await http.get(location(await http.get("/authorize", params=auth_params(client.client_id, pkce_pair()[1]))))
    fields = {"i": form_field(page.text, "i"), "csrf": form_field(page.text, "csrf")}
    for username, password in [(user.username + "' --", "x"), ("' OR 1=1 --", "' OR 1=1 --"), (user.username, "p" * 4000),
                               ("u" * 4000, "x"), (user.username.upper() + " ", "wrong")]:
        response = await http.post("/login", data=fields | {"username": username, "password": password})
        assert response.status_code == 401 and "set-cookie" not in response.headers
    ok = await http.post("/login", data=fields | {"username": user.username, "password": user.password})
    assert ok.status_code == 303


# --- token endpoint ----------------------------------------------------------------------------------


async def _live_code(http: httpx.AsyncClient, services: Services) -> tuple[AppClient, Person, str, str]:
    client = await make_client(services)
    user = await make_user(services)
    params, verifier = await authorize(http, client, user)
    return client, user, params["code"], verifier


async def test_token_endpoint_refuses_malformed_requests_without_consuming_the_code(http: httpx.AsyncClient, services: Services) -> None:
    client, _, code, verifier = await _live_code(http, services)
    auth = (client.client_id, str(client.secret))
    good = f"grant_type=authorization_code&code={code}&redirect_uri=https%3A%2F%2Fapp.example%2Fcallback&code_verifier={verifier}"
    cases: list[tuple[httpx.Response, int, str]] = [
        (await http.post("/token", json={"grant_type": "authorization_code", "code": code}, auth=auth), 400, "invalid_request"),
        (await http.post("/token", content=good.encode(), headers={"Content-Type": "text/plain"}, auth=auth), 400, "invalid_request"),
        (await http.post("/token", content=good.encode(), auth=auth), 400, "invalid_request"),  # no content type
        (await http.post("/token", content=good.encode() + b"&grant_type=authorization_code", headers=FORM, auth=auth), 400, "invalid_request"),
        (await http.post("/token", content=good.encode() + b"&x=%ff", headers=FORM, auth=auth), 400, "invalid_request"),
        (await http.post("/token", content=good.encode() + b"&x=%00", headers=FORM, auth=auth), 400, "invalid_request"),
        (await http.post("/token", content=good.encode() + "&x=é".encode(), headers=FORM, auth=auth), 400, "invalid_request"),
        (await http.post("/token", content=good.encode() + b"&x=" + b"y" * 5000, headers=FORM, auth=auth), 400, "invalid_request"),
        (await http.post("/token", content=good.encode().replace(b"grant_type=authorization_code", b"grant_type=Authorization_Code"),
                         headers=FORM, auth=auth), 400, "unsupported_grant_type"),
    ]
    for response, status, error in cases:
        assert_json_error(response, status, error)
    too_big = await http.post("/token", content=good.encode() + b"&" + BIG, headers=FORM, auth=auth)
    assert too_big.status_code == 413
    for method in ("GET", "PUT", "DELETE"):
        response = await http.request(method, "/token")
        assert response.status_code == 405 and response.headers["allow"] == "POST"
        assert response.json()["error"] == "invalid_request"
    assert (await redeem(http, client, code, verifier)).status_code == 200


async def test_hostile_codes_and_refresh_tokens_are_invalid_grant(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services)
    for value in [v for v in INJECTIONS if "\x00" not in v] + ["ac_" + "A" * 43, "ac_", "x" * 4000]:
        await _one_hostile_secret(http, client, value)


async def _one_hostile_secret(http: httpx.AsyncClient, client: AppClient, value: str) -> None:
    auth = (client.client_id, str(client.secret))
    code = await http.post("/token", data={"grant_type": "authorization_code", "code": value, "code_verifier": "v" * 43,
                                           "redirect_uri": "https://app.example/callback"}, auth=auth)
    assert_json_error(code, 400, "invalid_grant")
    rt = await http.post("/token", data={"grant_type": "refresh_token", "refresh_token": value}, auth=auth)
    assert_json_error(rt, 400, "invalid_grant")


async def test_hostile_client_credentials_are_invalid_client(http: httpx.AsyncClient) -> None:
    raw_credentials = [b"a\x00b:secret", b"client:sec\x00ret", b"\xff\xfe:x", b"no-colon", b":secret", b"%00:x", b"' OR 1=1 --:x",
                       b"x" * 300 + b":y"]
    headers = ["Basic " + base64.b64encode(raw).decode() for raw in raw_credentials]
    headers += ["Basic !!!notbase64", "Basic", "Basic  ", "Digest x", "Bearer x", "Basic " + "QQ==" * 3000]
    for header in headers:
        response = await http.post("/token", data={"grant_type": "client_credentials"}, headers={"Authorization": header})
        assert_json_error(response, 401, "invalid_client")
        assert response.headers["www-authenticate"].startswith("Basic"), header
    for client_id in ["", "x" * 65, "' OR 1=1 --", "a%3Ab", "%ff"]:
        response = await http.post("/token", content=f"grant_type=client_credentials&client_id={client_id}&client_secret=x".encode(), headers=FORM)
        assert response.status_code in (400, 401), (client_id, response.status_code)


# --- userinfo, jwks, discovery -----------------------------------------------------------------------


async def test_userinfo_hostile_bodies(http: httpx.AsyncClient) -> None:
    assert_json_error(await http.post("/userinfo", content=b"access_token=%ff", headers=FORM), 400, "invalid_request")
    assert_json_error(await http.post("/userinfo", content=b"access_token=a&access_token=b", headers=FORM), 400, "invalid_request")
    assert (await http.post("/userinfo", content=BIG, headers=FORM)).status_code == 413
    assert_json_error(await http.post("/userinfo", json={"access_token": "x"}), 401, "invalid_token")
    assert_json_error(await http.post("/userinfo", data={"access_token": "a\x00b"}), 400, "invalid_request")
    for token in [v for v in INJECTIONS if "\x00" not in v] + ["e30.e30.e30", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."]:
        response = await http.post("/userinfo", data={"access_token": token})
        assert_json_error(response, 401, "invalid_token")


@pytest.mark.parametrize("path", ["/jwks", "/revocations", "/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"])
async def test_public_documents_ignore_junk_and_refuse_writes(http: httpx.AsyncClient, path: str) -> None:
    assert (await http.get(f"{path}?x=%ff&x=%00&" + "y" * 3000)).status_code == 200
    assert (await http.get(path, headers={"If-None-Match": b'W/"junk", *, \xff'})).status_code in (200, 304)
    for method in ("POST", "PUT", "DELETE"):
        assert (await http.request(method, path)).status_code == 405
    assert (await http.post(path, content=BIG, headers=FORM)).status_code in (405, 413)
