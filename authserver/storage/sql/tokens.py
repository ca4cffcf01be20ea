"""Authorization codes, grants (token families) and refresh tokens.

Every single-use value is claimed with one conditional UPDATE (``… WHERE consumed_at IS NULL``), so two
parallel redemptions cannot both succeed on any engine, and each multi-write step is one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.clock import Clock
from authserver.storage.errors import AlreadyConsumed, Expired, NotFound
from authserver.storage.sql.models import AuthorizationCode, Grant, RefreshToken
from authserver.tokens.opaque import new_id


@dataclass(frozen=True)
class NewRefreshToken:
    token_digest: str
    idle_ttl: int


class SqlTokenStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    # --- authorization codes -------------------------------------------------------------------

    async def create_code(self, code: AuthorizationCode) -> None:
        async with self._sessions.begin() as session:
            session.add(code)

    async def get_code(self, code_digest: str) -> AuthorizationCode | None:
        async with self._sessions() as session:
            return await session.get(AuthorizationCode, code_digest)

    async def redeem_code(
        self,
        code: AuthorizationCode,
        *,
        absolute_ttl: int,
        refresh: NewRefreshToken | None,
        dpop_jkt: str | None = None,
    ) -> Grant:
        """Claim the code and create its grant (and first refresh token) in one transaction.

        Raises AlreadyConsumed (with the grant of the first redemption) if the code was used before, and
        Expired if it ran out before the claim (checked in the same statement: never reported as reuse).
        ``dpop_jkt`` binds the family's refresh tokens to a DPoP key (RFC 9449 §5, public clients).
        """
        now = self._clock.now()
        grant = Grant(
            grant_id=new_id(16),
            client_id=code.client_id,
            account_id=code.account_id,
            session_digest=code.session_digest,
            scopes=list(code.scopes),
            audience=list(code.audience),
            auth_time=code.auth_time,
            amr=list(code.amr),
            acr=code.acr,
            nonce=code.nonce,
            dpop_jkt=dpop_jkt,
            created_at=now,
            expires_at=now + timedelta(seconds=absolute_ttl),
        )
        async with self._sessions.begin() as session:
            claimed = await session.scalar(
                update(AuthorizationCode)
                .where(
                    AuthorizationCode.code_digest == code.code_digest,
                    AuthorizationCode.consumed_at.is_(None),
                    AuthorizationCode.expires_at > now,
                )
                .values(consumed_at=now, grant_id=grant.grant_id)
                .returning(AuthorizationCode.code_digest)
            )
            if claimed is None:
                previous = (
                    await session.execute(
                        select(AuthorizationCode.consumed_at, AuthorizationCode.grant_id)
                        .where(AuthorizationCode.code_digest == code.code_digest)
                    )
                ).first()
                if previous is None or previous.consumed_at is None:
                    raise Expired()  # ran out between the caller's check and this claim: not a reuse
                raise AlreadyConsumed(previous.grant_id)
            session.add(grant)
            if refresh is not None:
                await session.flush()
                session.add(self._refresh_row(grant, refresh, now))
        return grant

    # --- grants and refresh tokens ------------------------------------------------------------------

    async def create_grant(self, grant: Grant, refresh: NewRefreshToken | None = None) -> None:
        async with self._sessions.begin() as session:
            session.add(grant)
            if refresh is not None:
                await session.flush()
                session.add(self._refresh_row(grant, refresh, grant.created_at))

    async def get_grant(self, grant_id: str) -> Grant | None:
        async with self._sessions() as session:
            return await session.get(Grant, grant_id)

    async def get_refresh_token(self, token_digest: str) -> tuple[RefreshToken, Grant] | None:
        """The token and its family in one round trip (a join, not two lookups)."""
        async with self._sessions() as session:
            found = (
                await session.execute(
                    select(RefreshToken, Grant)
                    .join(Grant, Grant.grant_id == RefreshToken.grant_id)
                    .where(RefreshToken.token_digest == token_digest)
                )
            ).first()
            return None if found is None else (found[0], found[1])

    async def rotate_refresh_token(
        self, token_digest: str, *, new: NewRefreshToken, grant_id: str | None = None, revoke_on_reuse: bool = True
    ) -> Grant:
        """Consume a live refresh token and issue its successor, atomically.

        The successor carries the family's scope (RFC 6749 §6: "identical" to the original grant), whatever
        scope the refresh request narrowed its access token to.

        A token already consumed is reuse: the whole family is revoked and AlreadyConsumed raised (with
        the first use's ``consumed_at``). With ``revoke_on_reuse=False`` the family is left alone and the
        caller decides (the refresh grant's grace period, docs/token-lifecycle.md).
        A revoked or expired family raises NotFound. Exactly one of several parallel callers wins.
        ``grant_id`` (known from :meth:`get_refresh_token`) saves re-reading the token first; the
        claiming UPDATE checks it, so a wrong one only makes the rotation fail.
        """
        now = self._clock.now()
        async with self._sessions.begin() as session:
            if grant_id is None:
                row = await session.get(RefreshToken, token_digest)
                if row is None:
                    raise NotFound("refresh token")
                grant_id = row.grant_id
            # Lock the family so a concurrent revocation cannot slip between the check and the insert.
            grant = await session.scalar(select(Grant).where(Grant.grant_id == grant_id).with_for_update())
            if grant is None or grant.revoked_at is not None or grant.expires_at <= now:
                raise NotFound("grant")
            claimed = await session.scalar(
                update(RefreshToken)
                .where(
                    RefreshToken.token_digest == token_digest,
                    RefreshToken.grant_id == grant_id,
                    RefreshToken.consumed_at.is_(None),
                    RefreshToken.revoked_at.is_(None),
                    RefreshToken.expires_at > now,
                )
                .values(consumed_at=now)
                .returning(RefreshToken.token_digest)
            )
            if claimed is None:
                # Re-read: a parallel caller may have consumed it after our first read.
                consumed_at = await session.scalar(
                    select(RefreshToken.consumed_at).where(
                        RefreshToken.token_digest == token_digest, RefreshToken.grant_id == grant_id
                    )
                )
                reused = consumed_at is not None
            else:
                reused, consumed_at = False, None
                session.add(self._refresh_row(grant, new, now))
        if claimed is None:
            if reused:
                if revoke_on_reuse:
                    await self.revoke_grant(grant.grant_id, reason="refresh_token_reuse")
                raise AlreadyConsumed(grant.grant_id, consumed_at=consumed_at)
            raise NotFound("refresh token revoked")
        return grant

    async def revoke_grant(self, grant_id: str, *, reason: str) -> bool:
        """Revoke a family: its refresh tokens stop working at once. True if it was live."""
        now = self._clock.now()
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(Grant)
                .where(Grant.grant_id == grant_id, Grant.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason=reason)
            )
            await session.execute(
                update(RefreshToken)
                .where(RefreshToken.grant_id == grant_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    @staticmethod
    def _refresh_row(grant: Grant, new: NewRefreshToken, now: datetime) -> RefreshToken:
        expires_at = min(now + timedelta(seconds=new.idle_ttl), grant.expires_at)
        return RefreshToken(
            token_digest=new.token_digest,
            grant_id=grant.grant_id,
            client_id=grant.client_id,
            scopes=list(grant.scopes),
            created_at=now,
            expires_at=expires_at,
        )
