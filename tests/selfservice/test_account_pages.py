"""Account pages of issue 14: password change (current password, locks, other sessions and every token
family end), the apps holding the person's consent (withdrawal revokes that client's families), and
ASVS 5 7.4.3: enrolling or removing the second factor ends the person's other sessions."""

from __future__ import annotations

from pathlib import Path

import httpx
from starlette.applications import Starlette

from authserver.mfa import totp
from authserver.services import Services
from tests.conftest import ISSUER
from tests.support.apps import running_app
from tests.support.factories import ALL_SCOPES, authorize, form_field, make_client, make_user, redeem
from tests.support.lifecycle import Issued, is_active, issue, refresh, resource_server
from tests.support.mfa import enrol, mfa_env, page_secret, submit, to_second_step

NEW_PASSWORD = "la lluvia en Tegucigalpa"


def other_browser(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=ISSUER)


async def change(http: httpx.AsyncClient, current: str, new: str = NEW_PASSWORD, confirm: str | None = None, **headers: str) -> httpx.Response:
    page = await http.get("/account/password", headers=headers)
    assert page.status_code == 200, page.text
    return await http.post("/account/password", headers=headers, data={
        "csrf": form_field(page.text, "csrf"), "current_password": current, "new_password": new,
        "confirm_password": new if confirm is None else confirm,
    })


async def password_ok(services: Services, account_id: str, password: str) -> bool:
    account = await services.accounts.get(account_id)
    return account is not None and await services.passwords.verify(account.password_hash, password)


# --- password change ---------------------------------------------------------------------------------


async def test_change_needs_a_session_and_is_linked_from_the_account_page(http: httpx.AsyncClient, services: Services) -> None:
    response = await http.get("/account/password")
    assert response.status_code == 303 and response.headers["location"].startswith("/login?i=")
    assert (await http.post("/account/password", data={"current_password": "x"})).status_code == 403
    await issue(http, services)
    account = await http.get("/account")
    assert 'href="/account/password"' in account.text and 'href="/account/apps"' in account.text


async def test_change_keeps_this_session_and_ends_the_others_and_every_family(app: Starlette, http: httpx.AsyncClient, services: Services) -> None:
    here = await issue(http, services)
    rs = await resource_server(services)
    async with other_browser(app) as phone:
        there = await issue(phone, services, client=here.client, user=here.user)
        done = await change(http, here.user.password)
        assert done.status_code == 200 and 'id="password-message"' in done.text
        assert await password_ok(services, here.user.account_id, NEW_PASSWORD)
        assert not await password_ok(services, here.user.account_id, here.user.password)
        assert await services.browser_sessions.get(http.cookies.get("authserver_session")) is not None
        assert await services.browser_sessions.get(phone.cookies.get("authserver_session")) is None
        for issued in (here, there):
            assert (await refresh(http, issued.client, issued.refresh)).status_code == 400
            assert not await is_active(http, rs, issued.access)


async def test_wrong_current_password_changes_nothing_and_counts_towards_the_lock(database_url: str, tmp_root: Path) -> None:
    async with running_app(database_url, tmp_root, AUTHSERVER_ABUSE__ACCOUNT_FAILURES="2") as (_, services, http):
        issued = await issue(http, services)
        rs = await resource_server(services)
        for _ in range(2):
            wrong = await change(http, "not my password at all")
            assert wrong.status_code == 401 and 'id="password-error"' in wrong.text
        locked = await change(http, issued.user.password)
        assert locked.status_code == 429 and locked.headers["retry-after"]
        assert await password_ok(services, issued.user.account_id, issued.user.password)
        assert await is_active(http, rs, issued.access)


async def test_bad_new_passwords_and_forged_forms_change_nothing(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    current = issued.user.password
    cases = [
        (NEW_PASSWORD, NEW_PASSWORD + "!", 400, "no coinciden"),
        ("corta", "corta", 400, "12 caracteres"),
        ("password1234", "password1234", 400, "común"),
        ("y" * 257, "y" * 257, 400, "256"),
        (current, current, 400, "distinta"),
    ]
    for new, confirm, status, text in cases:
        response = await change(http, current, new, confirm)
        assert response.status_code == status and text in response.text, (new, response.status_code)
    page = await http.get("/account/password")
    csrf = form_field(page.text, "csrf")
    forged = await http.post("/account/password", data={"csrf": "0" * 64, "current_password": current, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert forged.status_code == 403
    duplicated = await http.post(
        "/account/password", headers={"content-type": "application/x-www-form-urlencoded"},
        content=f"csrf={csrf}&current_password=a&current_password=b&new_password=c&confirm_password=c",
    )
    assert duplicated.status_code == 400
    huge = await http.post("/account/password", data={"csrf": csrf, "current_password": "a" * 70_000})
    assert huge.status_code == 413
    assert (await http.delete("/account/password")).status_code == 405
    assert await password_ok(services, issued.user.account_id, current)
    assert (await refresh(http, issued.client, issued.refresh)).status_code == 200


async def test_password_page_in_english(http: httpx.AsyncClient, services: Services) -> None:
    issued = await issue(http, services)
    response = await change(http, issued.user.password, "short", "short", **{"accept-language": "en-GB,en;q=0.9"})
    assert response.status_code == 400 and "at least 12 characters" in response.text and 'lang="en"' in response.text


# --- apps holding consent -------------------------------------------------------------------------------


async def test_withdrawing_consent_revokes_that_apps_families_only_and_asks_again(http: httpx.AsyncClient, services: Services) -> None:
    user = await make_user(services)
    rs = await resource_server(services)
    mapa = await make_client(services, first_party=False, name="Mapa de Alertas")
    radio = await make_client(services, first_party=False, name="Radio Comunitaria")
    kept = await issue(http, services, client=radio, user=user)
    gone = await issue(http, services, client=mapa, user=user)
    page = await http.get("/account/apps")
    assert page.status_code == 200
    assert "Mapa de Alertas" in page.text and "Radio Comunitaria" in page.text and 'data-scope="offline_access"' in page.text
    done = await http.post("/account/apps", data={"csrf": form_field(page.text, "csrf"), "client_id": mapa.client_id})
    assert done.status_code == 200 and "Retiraste el acceso de Mapa de Alertas" in done.text
    assert f'data-client="{mapa.client_id}"' not in done.text and f'data-client="{radio.client_id}"' in done.text
    assert await services.consents.granted_scopes(user.account_id, mapa.client_id) == set()
    assert (await refresh(http, mapa, gone.refresh)).status_code == 400
    assert not await is_active(http, rs, gone.access)
    assert (await refresh(http, radio, kept.refresh)).status_code == 200
    # The next authorization request asks for consent again.
    params, _ = await authorize(http, mapa, user, consent=False)
    assert params["error"] == "access_denied"


async def test_withdrawal_refuses_forged_or_unknown_requests(http: httpx.AsyncClient, services: Services) -> None:
    mapa = await make_client(services, first_party=False, name="Mapa")
    issued = await issue(http, services, client=mapa)
    page = await http.get("/account/apps")
    csrf = form_field(page.text, "csrf")
    other = await make_client(services, first_party=False)
    for data, status in (
        ({"csrf": "forged", "client_id": mapa.client_id}, 403),
        ({"csrf": csrf, "client_id": other.client_id}, 400),
        ({"csrf": csrf, "client_id": "x" * 5000}, 400),
        ({"csrf": csrf}, 400),
    ):
        assert (await http.post("/account/apps", data=data)).status_code == status
    assert await services.consents.granted_scopes(issued.user.account_id, mapa.client_id)
    assert (await refresh(http, mapa, issued.refresh)).status_code == 200
    async with httpx.AsyncClient(transport=http._transport, base_url=ISSUER) as stranger:
        assert (await stranger.post("/account/apps", data={"csrf": csrf, "client_id": mapa.client_id})).status_code == 403
        assert (await stranger.get("/account/apps")).status_code == 303


async def test_no_apps_page_in_english(http: httpx.AsyncClient, services: Services) -> None:
    await issue(http, services)  # a first-party client: no consent asked, none listed
    page = await http.get("/account/apps", headers={"accept-language": "en"})
    assert page.status_code == 200 and 'id="no-apps"' in page.text and "No app has access" in page.text


# --- MFA changes end the other sessions ------------------------------------------------------------------


async def test_enrolling_from_the_account_page_ends_the_other_sessions(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        here = await issue(env.http, env.services)
        rs = await resource_server(env.services)
        async with env.client() as phone:
            there = await issue(phone, env.services, client=here.client, user=here.user)
            page = await env.http.get("/account/mfa/enrol")
            secret = page_secret(page.text)
            done = await env.http.post("/account/mfa/enrol", data={"csrf": form_field(page.text, "csrf"), "code": totp.code_at(secret, env.clock.now())})
            assert done.status_code == 200
            assert await env.services.browser_sessions.get(env.http.cookies.get("authserver_session")) is not None
            assert await env.services.browser_sessions.get(phone.cookies.get("authserver_session")) is None
            assert (await refresh(phone, there.client, there.refresh)).status_code == 400
            assert not await is_active(env.http, rs, there.access)


async def test_turning_mfa_off_ends_the_other_sessions(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        client = await make_client(env.services)
        user = await make_user(env.services)
        enrolled = await enrol(env.services, user.account_id)
        sessions = []
        for browser in (env.http, env.client()):
            env.clock.advance(30)
            pending = await to_second_step(browser, client, user)
            await submit(browser, pending, code=totp.code_at(enrolled.secret, env.clock.now()))
            sessions.append(browser.cookies.get("authserver_session"))
        page = await env.http.get("/account/mfa")
        done = await env.http.post("/account/mfa/disable", data={
            "csrf": form_field(page.text, "csrf"), "password": user.password, "backup_code": enrolled.backup_codes[0],
        })
        assert done.status_code == 200 and 'data-enabled="false"' in done.text and "Se cerraron tus otras sesiones" in done.text
        assert await env.services.browser_sessions.get(sessions[0]) is not None
        assert await env.services.browser_sessions.get(sessions[1]) is None


async def test_a_refused_mfa_change_ends_nothing(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        here = await issue(env.http, env.services)
        async with env.client() as phone:
            await sign_in_elsewhere(phone, env.services, here)
            page = await env.http.get("/account/mfa/enrol")
            wrong = await env.http.post("/account/mfa/enrol", data={"csrf": form_field(page.text, "csrf"), "code": "000000"})
            assert wrong.status_code == 400
            assert await env.services.browser_sessions.get(phone.cookies.get("authserver_session")) is not None
            assert (await refresh(env.http, here.client, here.refresh)).status_code == 200


async def sign_in_elsewhere(browser: httpx.AsyncClient, services: Services, issued: Issued) -> None:
    params, verifier = await authorize(browser, issued.client, issued.user)
    assert (await redeem(browser, issued.client, params["code"], verifier)).status_code == 200



async def test_enrolling_and_removing_through_the_json_api_end_the_other_sessions_but_not_the_callers(
    backend: str, database_url: str, tmp_root: Path
) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        app_client = await make_client(env.services, scopes=[*ALL_SCOPES, "mfa:manage"], audience=[env.services.settings.server.issuer])
        rs = await resource_server(env.services)
        mobile = await issue(env.http, env.services, client=app_client, scope="openid offline_access mfa:manage")
        auth = {"Authorization": f"Bearer {mobile.access}"}
        async with env.client() as laptop:
            other = await issue(laptop, env.services, user=mobile.user)
            secret = (await env.http.post("/api/me/mfa/totp", headers=auth)).json()["secret"]
            done = await env.http.post("/api/me/mfa/totp/confirm", headers=auth, json={"code": totp.code_at(secret, env.clock.now())})
            assert done.status_code == 200, done.text
            assert await env.services.browser_sessions.get(laptop.cookies.get("authserver_session")) is None
            assert (await refresh(laptop, other.client, other.refresh)).status_code == 400
            assert not await is_active(env.http, rs, other.access)
        assert (await env.http.get("/api/me/mfa", headers=auth)).status_code == 200, "the calling app's own family stays"
        env.clock.advance(30)
        async with env.client() as laptop:
            pending = await to_second_step(laptop, other.client, mobile.user)
            await submit(laptop, pending, code=totp.code_at(secret, env.clock.now()))
            assert await env.services.browser_sessions.get(laptop.cookies.get("authserver_session")) is not None
            removed = await env.http.request("DELETE", "/api/me/mfa/totp", headers=auth, json={
                "password": mobile.user.password, "backup_code": done.json()["backup_codes"][0]})
            assert removed.status_code == 200, removed.text
            assert await env.services.browser_sessions.get(laptop.cookies.get("authserver_session")) is None
        assert (await refresh(env.http, mobile.client, mobile.refresh)).status_code == 200
