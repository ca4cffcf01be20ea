"""Housekeeping: expired codes, refresh tokens, grants, sessions and deny-list entries are deleted in small
batches; rows still needed (live ones, and consumed ones within the retention, for reuse detection) stay."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from authserver.housekeeping import purge_once
from authserver.services import Services
from authserver.storage.sql.models import AuthorizationCode, DenyListEntry, Grant, RefreshToken
from authserver.tokens.opaque import digest
from tests.support.factories import authorize
from tests.support.lifecycle import frozen_app, issue, refresh, revoke

DAY = 24 * 3600


async def _exists(services: Services, model: type, key: str) -> bool:
    async with services.sessions() as session:
        return await session.get(model, key) is not None


async def test_purge_deletes_only_what_can_no_longer_matter(backend: str, database_url: str, tmp_root: Path) -> None:
    env = {"AUTHSERVER_LIFECYCLE__PURGE_BATCH_SIZE": "2", "AUTHSERVER_LIFECYCLE__PURGE_RETENTION": str(DAY)}
    async with frozen_app(backend, database_url, tmp_root, **env) as (http, services, clock):
        old = await issue(http, services, refresh_token_idle_ttl=3600, refresh_token_absolute_ttl=7200)
        old_rotated = (await refresh(http, old.client, old.refresh)).json()
        assert (await revoke(http, old.client, old.access)).status_code == 200
        params, _ = await authorize(http, old.client, old.user)  # a code never redeemed
        old_grant = (await services.tokens.get_refresh_token(digest(old.refresh)))[1].grant_id  # type: ignore[index]
        jti = services.signer.verify_access_token(old.access)["jti"]  # type: ignore[index]

        clock.advance(DAY + 7200 + 1)  # everything above expired more than the retention ago
        recent = await issue(http, services, client=old.client, user=old.user, refresh_token_idle_ttl=3600)
        recent_rotated = (await refresh(http, recent.client, recent.refresh)).json()

        report = await purge_once(services)
        assert report.refresh_tokens + report.grants >= 1 and report.codes >= 1 and report.deny_list >= 1
        assert not await _exists(services, Grant, old_grant)
        assert not await _exists(services, RefreshToken, digest(old_rotated["refresh_token"]))
        assert not await _exists(services, AuthorizationCode, digest(params["code"]))
        assert not await _exists(services, DenyListEntry, f"jti:{jti}")
        # The consumed predecessor of a live token is kept: its reuse is still detected.
        assert await _exists(services, RefreshToken, digest(recent.refresh))
        clock.advance(services.settings.tokens.refresh_token_grace_period + 1)  # past the grace period: reuse
        replay = await refresh(http, recent.client, recent.refresh)
        assert replay.status_code == 400
        assert (await refresh(http, recent.client, recent_rotated["refresh_token"])).status_code == 400


async def test_purge_walks_large_backlogs_in_batches(backend: str, database_url: str, tmp_root: Path) -> None:
    async with frozen_app(backend, database_url, tmp_root, AUTHSERVER_LIFECYCLE__PURGE_BATCH_SIZE="3", AUTHSERVER_LIFECYCLE__PURGE_RETENTION="0") as (http, services, clock):
        issued = await issue(http, services)
        claims = services.signer.verify_access_token(issued.access)
        assert claims is not None
        for n in range(10):
            await services.revocations.revoke_access_token(f"{claims['jti']}-{n}", exp=claims["exp"])
        clock.advance(services.settings.tokens.access_token_ttl + 120)
        await purge_once(services)
        async with services.sessions() as session:
            left = await session.scalar(select(func.count()).select_from(DenyListEntry).where(DenyListEntry.entry.like(f"jti:{claims['jti']}-%")))
        assert left == 0
