"""The admin API end to end with real access tokens: clients, users, roles, events; refused without the scope."""

from __future__ import annotations

import httpx
import jwt as pyjwt
import pytest
from openapi_spec_validator import validate
from sqlalchemy import func, select, update

from authserver.services import Services
from authserver.storage.sql.models import Account, BackupCode, Client
from tests.support.admin import admin_headers, client_token, make_admin_client
from tests.support.factories import authorize, make_client, make_user, redeem, unique

API = "/admin/api"


# -- access control ---------------------------------------------------------------------------------------------


async def test_refused_without_a_token_or_with_a_bad_one(http: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic YTpi"}):
        response = await http.get(f"{API}/clients", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"] == "invalid_token"
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_refused_with_a_token_without_the_admin_scope(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_admin_client(services, scopes=["admin", "read:levels"])
    token = await client_token(http, client, scope="read:levels")
    response = await http.get(f"{API}/clients", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_the_admin_scope_must_be_allowed_for_the_client(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"], audience=[])
    response = await http.post(
        "/token", data={"grant_type": "client_credentials", "scope": "admin"}, auth=(client.client_id, client.secret)
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_scope"


async def test_a_token_for_another_audience_is_refused(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_admin_client(services, audience=["https://api.cmipro.example"])
    token = await client_token(http, client)
    response = await http.get(f"{API}/roles", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401


async def test_a_token_stops_working_when_its_client_is_disabled(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_admin_client(services)
    headers = {"Authorization": f"Bearer {await client_token(http, client)}"}
    assert (await http.get(f"{API}/roles", headers=headers)).status_code == 200
    await services.clients.set_disabled(client.client_id, True)
    assert (await http.get(f"{API}/roles", headers=headers)).status_code == 401


async def test_a_persons_token_needs_the_admin_role_and_mfa(http: httpx.AsyncClient, services: Services) -> None:
    web = await make_client(services, scopes=["openid", "admin"], audience=[])
    person = await make_user(services, roles=["free_user"])
    http.cookies.clear()
    params, verifier = await authorize(http, web, person, scope="openid admin")
    token = (await redeem(http, web, params["code"], verifier)).json()["access_token"]
    response = await http.get(f"{API}/roles", headers={"Authorization": f"Bearer {token}"})
    # Password only (amr pwd) and no admin role: refused.
    assert response.status_code == 403
    assert "MFA" in response.json()["error_description"] or "admin" in response.json()["error_description"]
    # An administrator cannot even get a password-only token: sign-in stops at MFA enrolment.
    admin = await make_user(services, roles=["admin"])
    http.cookies.clear()
    with pytest.raises(AssertionError, match="autenticaci"):
        await authorize(http, web, admin, scope="openid admin")


# -- clients ------------------------------------------------------------------------------------------------------


async def test_client_create_read_update_disable_delete(http: httpx.AsyncClient, services: Services) -> None:
    headers = await admin_headers(http, services)
    client_id = unique("svc")
    created = await http.post(
        f"{API}/clients",
        headers=headers,
        json={
            "client_id": client_id, "name": "Sensor ingest", "client_type": "confidential",
            "grant_types": ["client_credentials"], "scopes": ["read:levels"], "rate_limit_per_minute": 600,
        },
    )
    assert created.status_code == 201, created.text
    secret = created.json()["client_secret"]
    assert created.json()["rate_limit_per_minute"] == 600
    assert created.headers["cache-control"] == "no-store"
    token = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert token.status_code == 200, token.text

    read = await http.get(f"{API}/clients/{client_id}", headers=headers)
    assert read.status_code == 200 and "client_secret" not in read.json()
    assert read.json()["scopes"] == ["read:levels"]

    patched = await http.patch(f"{API}/clients/{client_id}", headers=headers, json={"scopes": ["read:levels", "read:alerts"], "name": "Ingest"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["scopes"] == ["read:levels", "read:alerts"] and patched.json()["name"] == "Ingest"
    repeated = await http.patch(f"{API}/clients/{client_id}", headers=headers, json={"scopes": ["read:alerts", "read:levels", "read:alerts"]})
    assert repeated.status_code == 200 and repeated.json()["scopes"] == ["read:alerts", "read:levels"]

    assert (await http.post(f"{API}/clients/{client_id}/disable", headers=headers)).json()["disabled"] is True
    refused = await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))
    assert refused.status_code == 401
    assert (await http.post(f"{API}/clients/{client_id}/enable", headers=headers)).json()["disabled"] is False
    assert (await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret))).status_code == 200

    assert (await http.delete(f"{API}/clients/{client_id}", headers=headers)).status_code == 204
    assert (await http.get(f"{API}/clients/{client_id}", headers=headers)).status_code == 404
    assert (await http.delete(f"{API}/clients/{client_id}", headers=headers)).status_code == 404

    events = (await http.get(f"{API}/events", headers=headers, params={"client_id": client_id, "limit": "20"})).json()["items"]
    names = [e["event"] for e in events]
    for expected in ("admin.client_created", "admin.client_updated", "admin.client_disabled", "admin.client_enabled", "admin.client_deleted"):
        assert expected in names
    assert all(e["details"]["actor"]["client_id"] for e in events if e["event"].startswith("admin."))


async def test_invalid_redirect_uris_are_refused_field_by_field_and_nothing_is_created(
    http: httpx.AsyncClient, services: Services
) -> None:
    headers = await admin_headers(http, services)
    client_id = unique("web")
    response = await http.post(
        f"{API}/clients",
        headers=headers,
        json={
            "client_id": client_id, "name": "Web", "client_type": "public", "grant_types": ["authorization_code"],
            "redirect_uris": [
                "https://ok.example/cb", "http://evil.example/cb", "https://x.example/cb#frag", "https://*.x.example/cb",
                "https://user@x.example/cb", "myapp:/cb",
            ],
            "post_logout_redirect_uris": ["https://x.example/bye#"],
            "scopes": ["openid", "nope", "read levels"], "colour": "red",
        },
    )
    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {f"redirect_uris[{i}]" for i in range(1, 6)} | {"post_logout_redirect_uris[0]", "scopes[1]", "scopes[2]", "colour"}
    messages = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert "unknown scope" in messages["scopes[1]"] and "scope token" in messages["scopes[2]"]
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Client).where(Client.client_id == client_id)) == 0


async def test_inconsistent_client_settings_are_refused(http: httpx.AsyncClient, services: Services) -> None:
    headers = await admin_headers(http, services)
    cases = [
        {"name": "x", "client_type": "public", "grant_types": ["client_credentials"]},
        {"name": "x", "client_type": "confidential", "grant_types": ["authorization_code"]},
        {"name": "x", "client_type": "public", "grant_types": ["authorization_code"], "redirect_uris": ["https://a.example/cb"],
         "token_endpoint_auth_method": "client_secret_basic"},
    ]
    for body in cases:
        response = await http.post(f"{API}/clients", headers=headers, json=body)
        assert response.status_code == 400, body
        assert response.json()["errors"]


async def test_control_characters_are_refused_before_the_database(http: httpx.AsyncClient, services: Services) -> None:
    """A NUL is refused by PostgreSQL (an outage-looking DBAPIError): the API answers 400 for the field first."""
    headers = await admin_headers(http, services)
    before = len(await services.clients.list())
    for name in ["Ingest\x00", "Ingest\r\nX: 1", "\x7f"]:
        response = await http.post(f"{API}/clients", headers=headers, json={"name": name, "client_type": "confidential",
                                                                             "grant_types": ["client_credentials"]})
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["field"] == "name"
    assert len(await services.clients.list()) == before


async def test_malformed_requests_get_clear_errors(http: httpx.AsyncClient, services: Services) -> None:
    headers = await admin_headers(http, services)
    not_json = await http.post(f"{API}/clients", headers={**headers, "Content-Type": "application/json"}, content=b"{nope")
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error_description"]
    form = await http.post(f"{API}/clients", headers=headers, data={"name": "x"})
    assert form.status_code == 415
    array = await http.post(f"{API}/clients", headers=headers, json=[1, 2])
    assert array.status_code == 400
    bad_page = await http.get(f"{API}/users", headers=headers, params={"limit": "0"})
    assert bad_page.status_code == 400 and bad_page.json()["errors"][0]["field"] == "limit"
    repeated = await http.get(f"{API}/users?limit=1&limit=2", headers=headers)
    assert repeated.status_code == 400


async def test_public_clients_have_no_secret_to_rotate(http: httpx.AsyncClient, services: Services) -> None:
    headers = await admin_headers(http, services)
    public = await make_client(services, client_type="public", token_endpoint_auth_method="none")
    response = await http.post(f"{API}/clients/{public.client_id}/secrets", headers=headers)
    assert response.status_code == 409


# -- users and roles ------------------------------------------------------------------------------------------------


async def test_user_roles_flow_into_the_access_token(http: httpx.AsyncClient, services: Services) -> None:
    headers = await admin_headers(http, services)
    username = unique("ana")
    created = await http.post(
        f"{API}/users", headers=headers,
        json={"username": username, "password": "correct horse battery staple", "email": f"{username}@example.org", "roles": ["free_user"]},
    )
    assert created.status_code == 201, created.text
    account_id = created.json()["account_id"]
    assert (await http.post(f"{API}/users", headers=headers, json={"username": username})).status_code == 409
    bad_role = await http.patch(f"{API}/users/{account_id}", headers=headers, json={"roles": ["superuser"]})
    assert bad_role.status_code == 400
    # (admin would also be valid, but then sign-in needs MFA enrolment first)
    updated = await http.patch(f"{API}/users/{account_id}", headers=headers, json={"roles": ["premium_user", "free_user"]})
    assert updated.status_code == 200 and updated.json()["roles"] == ["premium_user", "free_user"]

    web = await make_client(services)
    from tests.support.factories import Person

    params, verifier = await authorize(http, web, Person(account_id, username, "correct horse battery staple"))
    access = (await redeem(http, web, params["code"], verifier)).json()["access_token"]
    assert pyjwt.decode(access, options={"verify_signature": False})["roles"] == ["premium_user", "free_user"]


async def test_user_disable_enable_reset_mfa_unlock_delete(http: httpx.AsyncClient, services: Services) -> None:
    headers = await admin_headers(http, services)
    person = await make_user(services)
    base = f"{API}/users/{person.account_id}"
    assert (await http.post(f"{base}/disable", headers=headers)).json()["disabled"] is True
    web = await make_client(services)
    http.cookies.clear()
    start = await http.get("/authorize", params={
        "response_type": "code", "client_id": web.client_id, "redirect_uri": "https://app.example/callback",
        "scope": "openid", "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "code_challenge_method": "S256",
    })
    from tests.support.factories import sign_in

    assert (await sign_in(http, start.headers["location"], person)).status_code == 401
    assert (await http.post(f"{base}/enable", headers=headers)).json()["disabled"] is False

    async with services.sessions.begin() as session:
        await session.execute(update(Account).where(Account.account_id == person.account_id).values(
            totp_secret_encrypted="x", totp_enabled_at=services.clock.now(), totp_last_step=5))
        session.add(BackupCode(account_id=person.account_id, code_hash="h", created_at=services.clock.now()))
    assert (await http.get(base, headers=headers)).json()["mfa_enabled"] is True
    reset = await http.post(f"{base}/reset-mfa", headers=headers)
    assert reset.status_code == 200 and reset.json()["mfa_enabled"] is False
    async with services.sessions() as session:
        row = await session.get(Account, person.account_id)
        assert row is not None and row.totp_secret_encrypted is None and row.totp_last_step is None
        assert await session.scalar(select(func.count()).select_from(BackupCode).where(BackupCode.account_id == person.account_id)) == 0

    # Unlock goes to the brute-force lockout store (authserver.abuse.unlock).
    assert (await http.post(f"{base}/unlock", headers=headers)).status_code == 200
    events = (await http.get(f"{API}/events", headers=headers, params={"account_id": person.account_id})).json()["items"]
    assert {"admin.user_disabled", "admin.user_enabled", "admin.user_mfa_reset", "admin.user_unlocked"} <= {e["event"] for e in events}

    assert (await http.delete(base, headers=headers)).status_code == 204
    assert (await http.get(base, headers=headers)).status_code == 404
    # GDPR erasure: the security log keeps the events under a pseudonym, none under the old id.
    after = (await http.get(f"{API}/events", headers=headers, params={"account_id": person.account_id})).json()["items"]
    assert after == []
    deleted = (await http.get(f"{API}/events", headers=headers, params={"event": "admin.user_deleted"})).json()["items"]
    assert deleted and all(e["account_id"].startswith("deleted-") for e in deleted)


async def test_users_are_paginated(http: httpx.AsyncClient, services: Services) -> None:
    headers = await admin_headers(http, services)
    for _ in range(3):
        await make_user(services)
    first = (await http.get(f"{API}/users", headers=headers, params={"limit": "2"})).json()
    assert len(first["items"]) == 2 and first["next_offset"] == 2
    second = (await http.get(f"{API}/users", headers=headers, params={"limit": "2", "offset": "2"})).json()
    assert {u["account_id"] for u in first["items"]}.isdisjoint({u["account_id"] for u in second["items"]})
    one = await make_user(services)
    found = (await http.get(f"{API}/users", headers=headers, params={"username": one.username})).json()["items"]
    assert [u["account_id"] for u in found] == [one.account_id]


async def test_roles_are_listed(http: httpx.AsyncClient, services: Services) -> None:
    headers = await admin_headers(http, services)
    names = [r["name"] for r in (await http.get(f"{API}/roles", headers=headers)).json()["items"]]
    assert names == ["free_user", "premium_user", "admin"]


async def test_events_filter_by_event_and_time(http: httpx.AsyncClient, services: Services) -> None:
    headers = await admin_headers(http, services)
    person = await make_user(services)
    await services.events.record("login", "failure", account_id=person.account_id, reason="bad_password")
    now = services.clock.now()
    hits = (await http.get(f"{API}/events", headers=headers, params={"account_id": person.account_id, "event": "login"})).json()
    assert [e["outcome"] for e in hits["items"]] == ["failure"]
    later = (now.replace(year=now.year + 1)).isoformat()
    none = (await http.get(f"{API}/events", headers=headers, params={"account_id": person.account_id, "since": later})).json()
    assert none["items"] == []
    bad = await http.get(f"{API}/events", headers=headers, params={"since": "yesterday"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "since"


# -- OpenAPI ---------------------------------------------------------------------------------------------------------


async def test_openapi_description_is_served_and_valid(http: httpx.AsyncClient, app: object) -> None:
    response = await http.get(f"{API}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    # Every admin route is described, and every described path exists.
    from starlette.routing import Route

    routes = {r.path for r in app.routes if isinstance(r, Route) and r.path.startswith(API) and not r.path.endswith("openapi.json")}  # type: ignore[attr-defined]
    assert routes == set(document["paths"])


async def test_an_admin_client_cannot_lock_itself_out(http: httpx.AsyncClient, services: Services) -> None:
    client = await make_admin_client(services)
    headers = {"Authorization": f"Bearer {await client_token(http, client)}"}
    base = f"{API}/clients/{client.client_id}"
    assert (await http.post(f"{base}/disable", headers=headers)).status_code == 409
    assert (await http.delete(base, headers=headers)).status_code == 409
    assert (await http.patch(base, headers=headers, json={"scopes": ["read:levels"]})).status_code == 409
    assert (await http.patch(base, headers=headers, json={"audience": ["https://api.cmipro.example"]})).status_code == 409
    assert (await http.patch(base, headers=headers, json={"name": "Still me"})).status_code == 200
    assert (await http.get(f"{API}/roles", headers=headers)).status_code == 200
