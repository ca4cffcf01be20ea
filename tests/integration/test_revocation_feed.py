"""GET /revocations: the deny list as a signed JWT for offline verifiers (authserver/tokens/feed.py).

Signature against our own JWKS (joserfc and PyJWT, neither of them our code), the document's shape, ETag
and 304, and the entries every kind of revocation writes: an access token, a family, a person disabled and
enabled again, a client disabled and enabled again. Runs on a FrozenClock, so the once-a-second memo and
the entries' expiry are driven by the test, never by sleeping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import jwt as pyjwt
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from authserver.accounts.lifecycle import disable_account, enable_account
from authserver.admin.service import Actor, AdminService
from authserver.chaos import InjectedFault
from authserver.clock import FrozenClock
from authserver.services import Services
from tests.conftest import ISSUER
from tests.support.factories import make_client
from tests.support.lifecycle import frozen_app, is_active, issue, refresh, resource_server, revoke

CLI = Actor(via="cli")


async def feed(http: httpx.AsyncClient, clock: FrozenClock | None = None) -> dict[str, Any]:
    """The feed's claims, verified with joserfc against /jwks; advances the clock past the memo first."""
    if clock is not None:
        clock.advance(1)
    response = await http.get("/revocations")
    assert response.status_code == 200, response.text
    keys = KeySet.import_key_set((await http.get("/jwks")).json())
    decoded = jwt.decode(response.content, keys, algorithms=["ES256", "RS256"])
    assert decoded.header["typ"] == "revocation-list+jwt"
    return dict(decoded.claims)


async def test_the_feed_is_a_jwt_signed_with_the_published_keys(backend: str, database_url: str, tmp_root: Path) -> None:
    async with frozen_app(backend, database_url, tmp_root) as (http, services, clock):
        response = await http.get("/revocations")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/revocation-list+jwt"
        assert response.headers["cache-control"] == f"public, max-age={services.settings.tokens.revocation_feed_max_age}"
        assert response.headers["access-control-allow-origin"] == "*"

        # PyJWT, as a resource server with nothing of ours would check it.
        header = pyjwt.get_unverified_header(response.text)
        jwks = (await http.get("/jwks")).json()
        key = pyjwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"]))
        claims = pyjwt.decode(response.text, key.key, algorithms=[key.algorithm_name], issuer=ISSUER,
                              options={"require": ["iss", "iat", "exp"]})
        assert header["typ"] == "revocation-list+jwt" and header["alg"] == services.settings.tokens.signing_alg
        assert claims["exp"] == claims["iat"] + services.settings.tokens.revocation_feed_lifetime
        assert claims["iat"] == int(clock.now().timestamp())
        assert set(claims) == {"iss", "iat", "exp", "revoked"}
        revoked = claims["revoked"]
        assert set(revoked) == {"jti", "gid", "acct", "client"}
        assert isinstance(revoked["jti"], list) and isinstance(revoked["gid"], list)
        assert isinstance(revoked["acct"], dict) and isinstance(revoked["client"], dict)

        meta = (await http.get("/.well-known/openid-configuration")).json()
        assert meta["cmipro_revocation_feed_uri"] == f"{ISSUER}/revocations"


async def test_etag_gives_304_and_the_table_is_read_at_most_once_a_second(backend: str, database_url: str, tmp_root: Path) -> None:
    async with frozen_app(backend, database_url, tmp_root) as (http, services, clock):
        first = await http.get("/revocations")
        etag = first.headers["etag"]
        reads = services.revocation_feed.table_reads
        for _ in range(20):
            again = await http.get("/revocations", headers={"If-None-Match": etag})
            assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        assert services.revocation_feed.table_reads == reads  # the memo answered: no SQL per request
        assert (await http.get("/revocations", headers={"If-None-Match": f'"other", W/{etag}'})).status_code == 304
        assert (await http.get("/revocations", headers={"If-None-Match": '"other"'})).content == first.content

        # A second later the table is read again; nothing changed, so the same document (and ETag) serves.
        clock.advance(1)
        assert (await http.get("/revocations", headers={"If-None-Match": etag})).status_code == 304
        assert services.revocation_feed.table_reads == reads + 1
        # Re-signed after a minute even if nothing changed, so a served document never nears its exp.
        clock.advance(60)
        renewed = await http.get("/revocations", headers={"If-None-Match": etag})
        assert renewed.status_code == 200 and renewed.headers["etag"] != etag

        assert (await http.head("/revocations")).status_code == 200
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert (await http.request(method, "/revocations")).status_code == 405


async def test_revoking_an_access_token_and_a_family_appear_in_the_feed(backend: str, database_url: str, tmp_root: Path) -> None:
    async with frozen_app(backend, database_url, tmp_root) as (http, services, clock):
        one = await issue(http, services)
        assert (await revoke(http, one.client, one.access)).status_code == 200
        jti = _claims(one.access)["jti"]
        assert jti in (await feed(http, clock))["revoked"]["jti"]

        http.cookies.clear()
        family = await issue(http, services)
        gid = _claims(family.access)["gid"]
        assert (await revoke(http, family.client, family.refresh)).status_code == 200
        assert gid in (await feed(http, clock))["revoked"]["gid"]

        # Refresh-token reuse revokes the family too.
        http.cookies.clear()
        reused = await issue(http, services)
        assert (await refresh(http, reused.client, reused.refresh)).status_code == 200
        clock.advance(services.settings.tokens.refresh_token_grace_period + 1)  # past the grace period: reuse
        assert (await refresh(http, reused.client, reused.refresh)).status_code == 400
        gid = _claims(reused.access)["gid"]
        assert gid in (await feed(http, clock))["revoked"]["gid"]

        # Entries leave the feed once no token they match can still be valid.
        clock.advance(services.settings.tokens.access_token_ttl + 120)
        revoked = (await feed(http, clock))["revoked"]
        assert jti not in revoked["jti"] and gid not in revoked["gid"]


async def test_a_disabled_person_and_a_disabled_client_appear_in_the_feed(backend: str, database_url: str, tmp_root: Path) -> None:
    async with frozen_app(backend, database_url, tmp_root) as (http, services, clock):
        issued = await issue(http, services)
        account_id = issued.user.account_id
        await disable_account(services, account_id, actor="test")
        assert (await feed(http, clock))["revoked"]["acct"][account_id] == "inf"
        clock.advance(5)
        await enable_account(services, account_id, actor="test")
        not_before = (await feed(http, clock))["revoked"]["acct"][account_id]
        assert isinstance(not_before, int) and not_before > _iat(issued.access)

        admin = AdminService(services)
        client = await make_client(services, grant_types=["client_credentials"], redirect_uris=[])
        token = (await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))).json()["access_token"]
        await admin.set_client_disabled(client.client_id, True, actor=CLI)
        assert (await feed(http, clock))["revoked"]["client"][client.client_id] == "inf"
        assert await services.revocations.is_revoked(_claims(token))
        clock.advance(5)
        await admin.set_client_disabled(client.client_id, False, actor=CLI)
        not_before = (await feed(http, clock))["revoked"]["client"][client.client_id]
        assert isinstance(not_before, int) and not_before > _iat(token)
        # The deny list, not only the registry, keeps the old token dead; a new one works.
        assert await services.revocations.is_revoked(_claims(token))
        rs = await resource_server(services)
        assert not await is_active(http, rs, token)
        fresh = (await http.post("/token", data={"grant_type": "client_credentials"}, auth=(client.client_id, client.secret))).json()["access_token"]
        assert not await services.revocations.is_revoked(_claims(fresh))
        assert await is_active(http, rs, fresh)

        # Deleting the client denies what it was issued, but not a client created again under its id later.
        clock.advance(5)
        await admin.delete_client(client.client_id, actor=CLI)
        assert await services.revocations.is_revoked(_claims(fresh))
        assert (await feed(http, clock))["revoked"]["client"][client.client_id] > _iat(fresh)


async def test_the_client_entry_is_read_in_the_same_cache_round_trip(services: Services) -> None:
    """is_revoked stays one get_many: the client entry rides with the others."""
    await services.revocations.is_revoked({"jti": "warm-up", "iat": 1})  # the marker is loaded
    calls: list[list[str]] = []
    original = services.cache.get_many

    async def counting(keys: list[str]) -> list[str | None]:
        calls.append(list(keys))
        return await original(keys)

    services.cache.get_many = counting  # type: ignore[method-assign]
    try:
        await services.revocations.is_revoked({"jti": "j", "gid": "g", "sub": "s", "client_id": "c", "iat": 1})
    finally:
        services.cache.get_many = original  # type: ignore[method-assign]
    assert len(calls) == 1 and calls[0][1:] == ["deny:jti:j", "deny:gid:g", "deny:acct:s", "deny:client:c"]


def _claims(token: str) -> dict[str, Any]:
    return dict(pyjwt.decode(token, options={"verify_signature": False}))


def _iat(token: str) -> int:
    return int(_claims(token)["iat"])


async def test_while_the_table_cannot_be_read_the_last_document_serves_until_its_exp(
    backend: str, database_url: str, tmp_root: Path
) -> None:
    """A database fault on the deny-list table (injected as chaos.py does, with the real exception type):
    nothing can be revoked meanwhile, so the last list read is still whole and keeps serving, unchanged."""
    async with frozen_app(backend, database_url, tmp_root) as (http, services, clock):
        issued = await issue(http, services)
        first = await http.get("/revocations")
        etag = first.headers["etag"]

        def deny_list_down(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
            if "deny_list" in statement:
                raise OperationalError(statement, parameters, InjectedFault("deny list down"))

        event.listen(services.engine.sync_engine, "before_cursor_execute", deny_list_down)
        try:
            clock.advance(1)
            assert (await http.get("/revocations", headers={"If-None-Match": etag})).status_code == 304
            assert (await revoke(http, issued.client, issued.access)).status_code == 503  # not recorded anywhere
            clock.advance(services.settings.tokens.revocation_feed_lifetime - 60)
            unavailable = await http.get("/revocations")
            assert unavailable.status_code == 503 and unavailable.json()["error"] == "temporarily_unavailable"
        finally:
            event.remove(services.engine.sync_engine, "before_cursor_execute", deny_list_down)
        clock.advance(1)
        assert (await http.get("/revocations")).status_code == 200


async def test_after_an_emergency_key_revocation_the_feed_is_signed_with_the_new_key_at_once(
    backend: str, database_url: str, tmp_root: Path
) -> None:
    async with frozen_app(backend, database_url, tmp_root) as (http, services, clock):
        old_kid = pyjwt.get_unverified_header((await http.get("/revocations")).text)["kid"]
        [new_kid] = await services.key_manager.revoke(old_kid)
        assert pyjwt.get_unverified_header((await http.get("/revocations")).text)["kid"] == new_kid  # same second
        assert "revoked" in await feed(http)  # and it verifies against the JWKS without the revoked key
