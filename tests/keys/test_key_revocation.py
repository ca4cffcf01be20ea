"""Emergency revocation (SPEC R-10, compromise): the key leaves the JWKS now, its tokens fail, new ones verify."""

from __future__ import annotations

import json
from collections.abc import Callable

import jwt as pyjwt
import pytest

from authserver.clock import FrozenClock
from authserver.keys.rotation import KeyNotFound
from authserver.settings import Settings
from cmipro_verify import InvalidToken, Verifier
from tests.keys.conftest import client_token, epoch, running
from tests.support.factories import make_client


async def test_revoked_key_tokens_fail_and_new_tokens_verify(make_settings: Callable[..., Settings]) -> None:
    clock = FrozenClock()
    async with running(make_settings(), clock) as (_, services, http):
        client = await make_client(services, grant_types=["client_credentials"])
        verifier = Verifier(
            issuer="http://testserver", audience="https://api.cmipro.example", jwks_url="http://testserver/jwks",
            clock=epoch(clock), async_http_client=http,
        )
        old = await client_token(http, client)
        old_kid = pyjwt.get_unverified_header(old)["kid"]
        assert (await verifier.verify_async(old)).client_id == client.client_id  # JWKS now cached

        revoked_at = clock.now()
        promoted = await services.key_manager.revoke(old_kid)

        new = await client_token(http, client)
        new_kid = pyjwt.get_unverified_header(new)["kid"]
        assert promoted == [new_kid] and new_kid != old_kid
        jwks = (await http.get("/jwks")).json()
        assert old_kid not in {k["kid"] for k in jwks["keys"]}
        # The promoted key was already published as next: the cached JWKS verifies new tokens, no refetch.
        fetches = verifier.jwks.fetches
        assert (await verifier.verify_async(new)).client_id == client.client_id
        assert verifier.jwks.fetches == fetches
        # A verifier that fetches now refuses the revoked key's tokens, on purpose …
        fresh = Verifier(
            issuer="http://testserver", audience="https://api.cmipro.example", jwks_url="http://testserver/jwks",
            clock=epoch(clock), async_http_client=http,
        )
        with pytest.raises(InvalidToken, match="unknown key id"):
            await fresh.verify_async(old)
        assert (await fresh.verify_async(new)).client_id == client.client_id
        # … and one holding a cached JWKS does once its max-age has passed (the documented bound).
        clock.advance(services.settings.tokens.jwks_max_age)
        with pytest.raises(InvalidToken, match="unknown key id"):
            await verifier.verify_async(old)
        assert (await verifier.verify_async(new)).client_id == client.client_id
        # The server itself no longer accepts it either (userinfo, introspection).
        assert services.signer.verify_access_token(old) is None
        assert services.signer.verify_access_token(new) is not None
        # A new successor was published for the next rotation, and the revocation is listed.
        listed = {k.kid: k for k in await services.key_manager.list_keys()}
        assert listed[old_kid].state == "revoked" and listed[old_kid].revoked_at == revoked_at
        assert [k.state for k in listed.values() if k.alg == "ES256" and k.state in ("active", "next")].count("next") == 1


async def test_revoking_a_key_twice_or_an_unknown_kid(make_settings: Callable[..., Settings]) -> None:
    clock = FrozenClock()
    async with running(make_settings(), clock) as (_, services, _http):
        next_kid = next(k.kid for k in await services.key_manager.list_keys() if k.state == "next" and k.alg == "ES256")
        assert await services.key_manager.revoke(next_kid) == []  # a next key never signed: nothing to promote
        assert await services.key_manager.revoke(next_kid) == []
        with pytest.raises(KeyNotFound):
            await services.key_manager.revoke("no-such-kid")
        # The schedule publishes a replacement successor on its next pass.
        await services.key_manager.tick()
        states = [k.state for k in await services.key_manager.list_keys() if k.alg == "ES256"]
        assert sorted(states) == ["active", "next", "revoked"]
        assert next_kid not in {k["kid"] for k in json.loads(services.keys.jwks_bytes)["keys"]}


async def test_introspection_forgets_verified_tokens_when_their_key_is_revoked(make_settings: Callable[..., Settings]) -> None:
    """Introspection remembers tokens whose signature checked out (TokenSigner.verify_access_token), but
    only with the key set that checked them: after an emergency revocation the token is inactive."""
    clock = FrozenClock()
    async with running(make_settings(), clock) as (_, services, http):
        client = await make_client(services, grant_types=["client_credentials"])
        api = await make_client(services, grant_types=[], can_introspect=True)
        token = await client_token(http, client)

        async def active() -> bool:
            answer = await http.post("/introspect", data={"token": token}, auth=(api.client_id, api.secret or ""))
            assert answer.status_code == 200
            return bool(answer.json()["active"])

        assert await active() and await active()  # the second answer comes from the remembered check
        await services.key_manager.revoke(pyjwt.get_unverified_header(token)["kid"])
        assert not await active()
