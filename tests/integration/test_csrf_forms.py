"""One CSRF mechanism for every form (issue 16): each POST form we render carries ``pages.form_token`` in a
hidden ``csrf`` field, and each one refuses a missing value, a wrong one, the value of another form, and
(for forms inside a sign-in flow) the right value sent from another browser. SQLite and PostgreSQL.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import httpx
from starlette.applications import Starlette

from authserver.web.pages import form_token
from tests.conftest import ISSUER
from tests.support.factories import REDIRECT_URI, authorize, make_client, make_user, pkce_pair, sign_in
from tests.support.mfa import enrol

TEMPLATES = Path(__file__).parents[2] / "authserver" / "web" / "templates"
FORM = re.compile(r'<form method="post" action="([^"]+)"[^>]*>(.*?)</form>', re.DOTALL)
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def test_every_post_form_template_carries_the_csrf_field() -> None:
    templates = {p.name: p.read_text() for p in TEMPLATES.glob("*.html")}
    forms = [(name, body) for name, text in templates.items() for _, body in FORM.findall(text)]
    assert len(forms) >= 12, [name for name, _ in forms]
    for name, body in forms:
        # mfa_enrol.html writes its hidden fields from a dict the views fill with the csrf value.
        assert '<input type="hidden" name="csrf" value="{{ csrf }}">' in body or (
            name == "mfa_enrol.html" and "hidden.items()" in body
        ), f"{name}: a POST form without the csrf field"


def forms_of(page: httpx.Response) -> list[tuple[str, dict[str, str]]]:
    assert page.status_code == 200, page.text[:300]
    found = [(html.unescape(action), {k: html.unescape(v) for k, v in HIDDEN.findall(body)}) for action, body in FORM.findall(page.text)]
    assert found, f"no form on {page.url}"
    return found


async def landing(http: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
    """Follow our own redirects to the page they end on."""
    for _ in range(5):
        if response.status_code not in (302, 303):
            return response
        response = await http.get(response.headers["location"])
    raise AssertionError("too many redirects")


def browser(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)


async def assert_refused(http: httpx.AsyncClient, action: str, fields: dict[str, str], csrf: str | None, what: str) -> None:
    data = {k: v for k, v in fields.items() if k != "csrf"}
    data.update({"username": "nobody", "password": "x" * 12, "code": "000000", "decision": "allow", "confirm": "yes"})
    if csrf is not None:
        data["csrf"] = csrf
    response = await http.post(action, data=data)
    if what == "another browser" and response.status_code == 303:  # no session there: sent to sign in, nothing done
        assert response.headers["location"].startswith("/login?i="), (action, response.headers)
        return
    assert response.status_code == 403, (action, what, response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("text/html"), action


async def check_forms(http: httpx.AsyncClient, page: httpx.Response, *, other: httpx.AsyncClient | None = None) -> list[str]:
    checked = []
    for action, fields in forms_of(page):
        good = fields["csrf"]
        assert re.fullmatch(r"[0-9a-f]{64}", good), (action, good)
        await assert_refused(http, action, fields, None, "missing")
        await assert_refused(http, action, fields, "0" * 64, "wrong")
        await assert_refused(http, action, fields, form_token("someone-else's-cookie", "sessions"), "another secret")
        if other is not None:  # a flow's form: the right value, from a browser that did not start the flow
            await assert_refused(other, action, fields, good, "another browser")
        checked.append(action)
    return checked


async def test_every_form_refuses_a_missing_wrong_or_foreign_csrf_value(app: Starlette) -> None:
    services = app.state.services
    checked: list[str] = []
    first_party = await make_client(services)
    third_party = await make_client(services, first_party=False)
    strict = await make_client(services, require_mfa=True)
    person = await make_user(services)
    enrolled = await make_user(services)
    await enrol(services, enrolled.account_id)

    async with browser(app) as http, browser(app) as stranger:
        # Flow forms: login, consent.
        _, challenge = pkce_pair()
        params = {"response_type": "code", "client_id": third_party.client_id, "redirect_uri": REDIRECT_URI,
                  "scope": "openid", "code_challenge": challenge, "code_challenge_method": "S256"}
        start = await http.get("/authorize", params=params)
        login = start.headers["location"]
        checked += await check_forms(http, await http.get(login), other=stranger)
        after = await sign_in(http, login, person)
        consent = await landing(http, after)
        assert "/consent" in str(consent.url), consent.url
        checked += await check_forms(http, consent, other=stranger)
        # A signed-in person: the account forms (session-keyed values).
        await authorize(http, first_party, person)
        await authorize(http, third_party, person)
        for path in ("/account/sessions", "/account/password", "/account/apps", "/account/mfa/enrol", "/logout"):
            checked += await check_forms(http, await http.get(path))

    async with browser(app) as http, browser(app) as stranger:
        # Second step and enrolment inside a flow, the account MFA page, the forgotten-password page.
        _, challenge = pkce_pair()
        params = {"response_type": "code", "client_id": first_party.client_id, "redirect_uri": REDIRECT_URI,
                  "scope": "openid", "code_challenge": challenge, "code_challenge_method": "S256"}
        after = await sign_in(http, (await http.get("/authorize", params=params)).headers["location"], enrolled)
        assert after.headers["location"].startswith("/mfa?i="), after.headers
        checked += await check_forms(http, await http.get(after.headers["location"]), other=stranger)
        # (/password/forgot shows its form only with mail configured: tests/selfservice/test_password_reset.py.)

    async with browser(app) as http, browser(app) as stranger:
        _, challenge = pkce_pair()
        params = {"response_type": "code", "client_id": strict.client_id, "redirect_uri": REDIRECT_URI,
                  "scope": "openid", "code_challenge": challenge, "code_challenge_method": "S256"}
        after = await sign_in(http, (await http.get("/authorize", params=params)).headers["location"], person)
        enrolment = await landing(http, after)
        assert "/mfa/enrol?i=" in str(enrolment.url), enrolment.url
        checked += await check_forms(http, enrolment, other=stranger)

    expected = {"/login", "/consent", "/account/sessions", "/account/password", "/account/apps", "/account/mfa/enrol",
                "/logout", "/mfa", "/mfa/enrol"}
    assert expected <= set(checked), sorted(set(checked))


async def test_the_account_mfa_forms_refuse_a_foreign_csrf_value(app: Starlette) -> None:
    services = app.state.services
    client = await make_client(services)
    person = await make_user(services)
    async with browser(app) as http:
        await authorize(http, client, person)
        await enrol(services, person.account_id)
        checked = await check_forms(http, await http.get("/account/mfa"))
    assert {"/account/mfa/backup-codes", "/account/mfa/disable"} <= set(checked)


async def test_a_flow_started_from_an_account_page_signs_in(app: Starlette) -> None:
    """/account/sessions and /account/mfa sent people to a sign-in bound to no browser, whose form was
    then refused; they now bind the browser like every other page."""
    services = app.state.services
    person = await make_user(services)
    for path in ("/account/sessions", "/account/mfa"):
        async with browser(app) as http:
            start = await http.get(path)
            assert start.status_code == 303 and start.headers["location"].startswith("/login?i="), start.text
            signed = await sign_in(http, start.headers["location"], person)
            assert signed.status_code == 303 and signed.headers["location"] == path, (path, signed.text[:300])
            assert (await http.get(path)).status_code == 200, path
