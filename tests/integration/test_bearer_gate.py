"""The bearer-token gate over the whole route table (issue 12): every route is either public (listed below
with its reason) or declares a protection, and every protected route refuses a revoked token, a
disabled client's token, a disabled person's token and a token for another audience, on SQLite and
PostgreSQL + Redis.

Tokens are signed by the running server for a real client, person and grant in the database; revocation
goes through ``/revoke``, disablement through the admin service, as an operator would do it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from authserver.admin.registration import REGISTRATION_CLIENT, issue_initial_access_token
from authserver.admin.service import Actor, AdminService
from authserver.endpoints.bearer import Protection, protection_of
from authserver.services import Services
from authserver.storage.sql.models import Grant
from authserver.tokens.opaque import new_id
from tests.support.factories import ALL_SCOPES, AppClient, Person, make_client, make_user

# Routes without a bearer token, and why. A new route must be listed here or declare a protection.
PUBLIC = {
    "token": "client authentication (RFC 6749 §2.3)",
    "introspection": "client authentication (RFC 7662 §2.1)",
    "revocation": "client authentication (RFC 7009 §2.1)",
    "par": "client authentication (RFC 9126 §2)",
    "jwks": "public keys",
    "revocation_feed": "public, signed revocation feed for local verifiers",
    "openid_configuration": "public metadata",
    "oauth_metadata": "public metadata",
    "admin_openapi": "public description of the admin API",
    "authorize": "browser flow (session cookie)",
    "authorize_resume": "browser flow (session cookie)",
    "login": "browser flow (session cookie)",
    "consent": "browser flow (session cookie)",
    "end_session": "browser flow (session cookie, id_token_hint)",
    "account": "account pages (session cookie)",
    "account_sessions": "account pages (session cookie)",
    "mfa": "browser flow (session cookie)",
    "mfa_enrol": "browser flow (session cookie)",
    "account_mfa": "account pages (session cookie)",
    "account_mfa_enrol": "account pages (session cookie)",
    "account_mfa_backup_codes": "account pages (session cookie)",
    "account_mfa_disable": "account pages (session cookie)",
    "account_password": "account pages (session cookie)",
    "account_apps": "account pages (session cookie)",
    "password_forgot": "browser page before sign-in (browser-bound CSRF, rate-limited)",
    "password_reset": "browser page before sign-in (the mailed single-use link)",
    "signup": "browser page before sign-in (browser-bound CSRF, rate-limited, off unless self_service.signup)",
    "email_verify": "browser page (the mailed single-use verification link)",
    "account_profile": "account pages (session cookie)",
    "account_mfa_recover": "account pages (session cookie + single-use recovery value)",
    "healthz": "probe",
    "readyz": "probe",
    "metrics": "scraped on the private network (docs/operations.md)",
    "static": "files",
}
OTHER_API = "https://api.cmipro.example"
METHOD_ORDER = ["GET", "POST", "PATCH", "PUT", "DELETE"]


def routes_of(app: Starlette) -> list[Route | Mount]:
    return [r for r in app.routes if isinstance(r, (Route, Mount))]


def protected_routes(app: Starlette, services: Services) -> list[tuple[Route, Protection]]:
    found = []
    for route in routes_of(app):
        protection = protection_of(route.endpoint, services) if isinstance(route, Route) else None
        if protection is not None:
            assert isinstance(route, Route)
            found.append((route, protection))
    return found


def test_every_route_is_public_or_protected(app: Starlette, services: Services) -> None:
    unlisted = []
    for route in routes_of(app):
        protection = protection_of(route.endpoint, services) if isinstance(route, Route) else None
        if route.name in PUBLIC:
            assert protection is None, f"{route.name} is listed as public but declares a protection"
        elif protection is None:
            unlisted.append(route.name)
    assert not unlisted, f"routes neither public nor protected: {unlisted}"
    names = {route.name for route, _ in protected_routes(app, services)}
    assert {"userinfo", "api_mfa_status", "api_mfa_totp", "admin_clients", "admin_user", "register"} <= names


@dataclass
class Holder:
    """Who a test token belongs to: a client (with its secret, for /revoke) and, for a person's token, a person."""

    client: AppClient
    person: Person | None


@dataclass
class Case:
    route: Route
    protection: Protection
    holder_kind: str  # "person", "client" or "pseudo"

    @property
    def id(self) -> str:
        return f"{self.route.name}-{self.holder_kind}"


def cases(app: Starlette, services: Services) -> list[Case]:
    found = []
    for route, protection in protected_routes(app, services):
        if protection.pseudo_clients:
            found.append(Case(route, protection, "pseudo"))
            continue
        if protection.person:
            found.append(Case(route, protection, "person"))
        if protection.client:
            found.append(Case(route, protection, "client"))
    return found


class Tokens:
    """Tokens the running server signs, for real clients, people and grants in its database."""

    def __init__(self, services: Services, admin: AdminService) -> None:
        self.services = services
        self.admin = admin
        self.issuer = services.settings.server.issuer

    async def holder(self, kind: str, protection: Protection) -> Holder:
        scopes = sorted({*ALL_SCOPES, "mfa:manage", self.services.settings.admin.scope, protection.scope})
        client = await make_client(self.services, scopes=scopes, audience=[self.issuer, OTHER_API])
        person = await make_user(self.services, roles=["admin"]) if kind == "person" else None
        return Holder(client, person)

    async def token(self, case: Case, holder: Holder, *, audience: list[str] | None = None) -> str:
        audience = audience or [self.issuer + case.protection.audiences[0]]
        if case.holder_kind == "pseudo":
            if audience == [self.issuer + case.protection.audiences[0]]:
                return issue_initial_access_token(self.services, ttl=600)
            return self.services.signer.access_token(
                client_id=REGISTRATION_CLIENT, subject=REGISTRATION_CLIENT, scopes=[case.protection.scope],
                audience=audience, ttl=600,
            ).token
        client_id = holder.client.client_id
        if holder.person is None:
            return self.services.signer.access_token(
                client_id=client_id, subject=client_id, scopes=[case.protection.scope], audience=audience, ttl=600,
            ).token
        now = self.services.clock.now()
        grant = Grant(
            grant_id=new_id(16), client_id=client_id, account_id=holder.person.account_id, scopes=[case.protection.scope],
            audience=audience, auth_time=now, amr=["pwd", "otp"], created_at=now, expires_at=now + timedelta(hours=1),
        )
        await self.services.tokens.create_grant(grant)
        return self.services.signer.access_token(
            client_id=client_id, subject=holder.person.account_id, scopes=[case.protection.scope], audience=audience,
            ttl=600, extra={"gid": grant.grant_id, "amr": ["pwd", "otp"], "roles": ["admin"], "auth_time": int(now.timestamp())},
        ).token


def concrete_path(route: Route) -> str:
    return re.sub(r"\{[^}]+\}", "nobody", route.path)


async def call(http: httpx.AsyncClient, route: Route, method: str, token: str) -> httpx.Response:
    return await http.request(method, concrete_path(route), headers={"Authorization": f"Bearer {token}"})


async def accepting_method(http: httpx.AsyncClient, route: Route, token: str) -> str:
    """The first method of the route whose answer to a good token is neither a refusal nor a 405."""
    for method in METHOD_ORDER:
        if route.methods is not None and method not in route.methods:
            continue
        response = await call(http, route, method, token)
        assert response.status_code < 500, (route.name, method, response.text)
        if response.status_code not in (401, 403, 405):
            return method
    raise AssertionError(f"{route.name}: no method accepts a good token")


def assert_refused(response: httpx.Response, what: str) -> None:
    assert response.status_code == 401, (what, response.status_code, response.text)
    assert response.json()["error"] == "invalid_token", what
    assert 'error="invalid_token"' in response.headers["www-authenticate"], what


Refusal = Callable[[httpx.AsyncClient, Services, Tokens, Case], Awaitable[None]]


async def revoked(http: httpx.AsyncClient, services: Services, tokens: Tokens, case: Case) -> None:
    holder = await tokens.holder(case.holder_kind, case.protection)
    token = await tokens.token(case, holder)
    method = await accepting_method(http, case.route, token)
    if case.holder_kind == "pseudo":
        claims = services.signer.verify_access_token(token)
        assert claims is not None
        await services.revocations.revoke_access_token(str(claims["jti"]), exp=int(claims["exp"]))
    else:
        answer = await http.post("/revoke", data={"token": token}, auth=(holder.client.client_id, holder.client.secret or ""))
        assert answer.status_code == 200, answer.text
    assert_refused(await call(http, case.route, method, token), f"{case.id}: revoked")


async def disabled_client(http: httpx.AsyncClient, services: Services, tokens: Tokens, case: Case) -> None:
    holder = await tokens.holder(case.holder_kind, case.protection)
    token = await tokens.token(case, holder)
    method = await accepting_method(http, case.route, token)
    await tokens.admin.set_client_disabled(holder.client.client_id, True, actor=Actor(via="cli"))
    assert_refused(await call(http, case.route, method, token), f"{case.id}: disabled client")


async def disabled_account(http: httpx.AsyncClient, services: Services, tokens: Tokens, case: Case) -> None:
    holder = await tokens.holder(case.holder_kind, case.protection)
    assert holder.person is not None
    token = await tokens.token(case, holder)
    method = await accepting_method(http, case.route, token)
    await tokens.admin.set_user_disabled(holder.person.account_id, True, actor=Actor(via="cli"))
    assert_refused(await call(http, case.route, method, token), f"{case.id}: disabled account")


async def other_audience(http: httpx.AsyncClient, services: Services, tokens: Tokens, case: Case) -> None:
    holder = await tokens.holder(case.holder_kind, case.protection)
    method = await accepting_method(http, case.route, await tokens.token(case, holder))
    foreign = await tokens.token(case, holder, audience=[OTHER_API])
    assert_refused(await call(http, case.route, method, foreign), f"{case.id}: audience {OTHER_API}")


REFUSALS: dict[str, Refusal] = {
    "revoked": revoked,
    "disabled_client": disabled_client,
    "disabled_account": disabled_account,
    "other_audience": other_audience,
}


@pytest.mark.parametrize("refusal", list(REFUSALS))
async def test_every_protected_route_refuses(http: httpx.AsyncClient, app: Starlette, services: Services, refusal: str) -> None:
    tokens = Tokens(services, app.state.admin)
    ran = []
    for case in cases(app, services):
        if refusal == "disabled_client" and case.holder_kind == "pseudo":
            continue  # the CLI's pseudo-client is not in the registry: nothing to disable
        if refusal == "disabled_account" and case.holder_kind != "person":
            continue
        await REFUSALS[refusal](http, services, tokens, case)
        ran.append(case.id)
    assert len(ran) >= 10, ran


async def test_a_token_whose_grant_belongs_to_someone_else_is_refused(http: httpx.AsyncClient, app: Starlette, services: Services) -> None:
    """The gate ties the token's subject to its grant: a token naming another person's grant is refused."""
    tokens = Tokens(services, app.state.admin)
    case = Case(Route("/api/me/mfa", lambda r: None, name="api_mfa_status"), Protection(scope="mfa:manage"), "person")
    holder = await tokens.holder("person", case.protection)
    token = await tokens.token(case, holder)
    assert (await http.get("/api/me/mfa", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    other = await make_user(services)
    claims = services.signer.verify_access_token(token)
    assert claims is not None
    forged = services.signer.access_token(
        client_id=holder.client.client_id, subject=other.account_id, scopes=["mfa:manage"], audience=[tokens.issuer],
        ttl=600, extra={"gid": claims["gid"]},
    ).token
    assert_refused(await http.get("/api/me/mfa", headers={"Authorization": f"Bearer {forged}"}), "grant of another person")


async def test_a_client_token_is_refused_where_a_person_is_required(http: httpx.AsyncClient, app: Starlette, services: Services) -> None:
    tokens = Tokens(services, app.state.admin)
    protection = Protection(scope="mfa:manage")
    holder = await tokens.holder("client", protection)
    case = Case(Route("/api/me/mfa", lambda r: None, name="api_mfa_status"), protection, "client")
    token = await tokens.token(case, holder)
    assert_refused(await http.get("/api/me/mfa", headers={"Authorization": f"Bearer {token}"}), "client token")
