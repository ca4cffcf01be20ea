"""GET /jwks (RFC 7517 §5): next, active and retired public keys from memory, with max-age and an ETag."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete

from authserver.clock import FrozenClock
from authserver.settings import Settings
from authserver.storage.sql.models import SigningKey
from tests.keys.conftest import running


async def test_jwks_publishes_next_and_active_public_keys_with_cache_headers(make_settings: Callable[..., Settings]) -> None:
    async with running(make_settings(AUTHSERVER_TOKENS__JWKS_MAX_AGE="120"), FrozenClock()) as (_, services, http):
        response = await http.get("/jwks")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/jwk-set+json"
        assert response.headers["cache-control"] == "public, max-age=120"
        etag = response.headers["etag"]
        published = response.json()["keys"]
        listed = {k.kid: k.state for k in await services.key_manager.list_keys()}
        assert {k["kid"]: listed[k["kid"]] for k in published} == listed  # 2 active + 2 next
        assert sorted(listed.values()) == ["active", "active", "next", "next"]
        for key in published:
            assert key["use"] == "sig" and key["alg"] in ("ES256", "RS256")
            assert not {"d", "p", "q", "dp", "dq", "qi", "k"} & set(key)  # public halves only
        again = await http.get("/jwks", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.headers["etag"] == etag and not again.content

        # Served from memory, not from the database: a change made behind the instance's back shows
        # only at its next reload (every keys.reload_interval).
        next_kid = next(kid for kid, state in listed.items() if state == "next")
        async with services.sessions.begin() as session:
            await session.execute(delete(SigningKey).where(SigningKey.kid == next_kid))
        assert (await http.get("/jwks")).headers["etag"] == etag
        await services.keys.load()
        reloaded = await http.get("/jwks")
        assert reloaded.headers["etag"] != etag and next_kid not in {k["kid"] for k in reloaded.json()["keys"]}
