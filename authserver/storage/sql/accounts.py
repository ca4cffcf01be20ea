"""People who sign in: accounts, their roles and credentials."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.clock import Clock
from authserver.storage.errors import Conflict, NotFound
from authserver.storage.sql.models import Account
from authserver.tokens.opaque import new_id


def normalise_username(username: str) -> str:
    return username.strip().lower()


class SqlAccountStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    async def get(self, account_id: str) -> Account | None:
        async with self._sessions() as session:
            return await session.get(Account, account_id)

    async def get_by_username(self, username: str) -> Account | None:
        username = normalise_username(username)
        if not username or len(username) > 150:
            return None
        async with self._sessions() as session:
            return await session.scalar(select(Account).where(Account.username == username))

    async def find_by_email(self, email: str, *, limit: int = 5) -> Sequence[Account]:
        """Enabled accounts with this address (compared case-insensitively), at most ``limit``."""
        email = email.strip().lower()
        if not email or len(email) > 320:
            return []
        async with self._sessions() as session:
            return (
                await session.scalars(
                    select(Account)
                    .where(func.lower(Account.email) == email, Account.disabled_at.is_(None))
                    .order_by(Account.created_at)
                    .limit(limit)
                )
            ).all()

    async def list(self, *, limit: int = 100, offset: int = 0) -> Sequence[Account]:
        async with self._sessions() as session:
            return (await session.scalars(select(Account).order_by(Account.created_at).limit(limit).offset(offset))).all()

    async def create(
        self,
        *,
        username: str,
        password_hash: str | None,
        email: str | None = None,
        email_verified: bool = False,
        name: str | None = None,
        roles: list[str] | None = None,
        locale: str | None = None,
    ) -> Account:
        username = normalise_username(username)
        if not username or len(username) > 150:
            raise ValueError("username must have 1-150 characters")
        now = self._clock.now()
        row = Account(
            account_id=new_id(16),
            username=username,
            email=email,
            email_verified=email_verified,
            name=name,
            locale=locale,
            password_hash=password_hash,
            roles=list(roles or []),
            created_at=now,
            updated_at=now,
        )
        try:
            async with self._sessions.begin() as session:
                session.add(row)
        except IntegrityError:
            raise Conflict(f"username {username} is taken") from None
        return row

    async def set_password_hash(self, account_id: str, password_hash: str) -> None:
        await self._update(account_id, password_hash=password_hash)

    async def set_profile(self, account_id: str, *, name: str | None, locale: str | None) -> None:
        await self._update(account_id, name=name, locale=locale)

    async def change_email(self, account_id: str, email: str | None) -> None:
        """A new address is unverified until its link is used (docs/self-service.md)."""
        await self._update(account_id, email=email, email_verified=False)

    async def mark_email_verified(self, account_id: str, email: str) -> bool:
        """Verify ``email`` only if it is still the account's address (a link from before a later change
        must not verify the new one). True if the row changed."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(Account)
                .where(Account.account_id == account_id, func.lower(Account.email) == email.strip().lower(), Account.disabled_at.is_(None))
                .values(email_verified=True, updated_at=self._clock.now())
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def set_roles(self, account_id: str, roles: list[str]) -> None:
        await self._update(account_id, roles=list(roles))

    async def set_disabled(self, account_id: str, disabled: bool) -> None:
        await self._update(account_id, disabled_at=self._clock.now() if disabled else None)

    async def _update(self, account_id: str, **values: object) -> None:
        async with self._sessions.begin() as session:
            result = await session.execute(
                update(Account).where(Account.account_id == account_id).values(updated_at=self._clock.now(), **values)
            )
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise NotFound(account_id)
