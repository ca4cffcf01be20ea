"""Storage outcomes, in storage words (grants translate them into OAuth errors)."""

from datetime import datetime

from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class StorageError(Exception):
    pass


class NotFound(StorageError):
    pass


class Conflict(StorageError):
    """A unique value (username, client id) is taken."""


class Expired(StorageError):
    """A single-use value ran out before it could be claimed (not a reuse)."""


class AlreadyConsumed(StorageError):
    """A single-use value (code, refresh token) was presented again."""

    def __init__(self, grant_id: str | None, *, consumed_at: datetime | None = None) -> None:
        super().__init__("already consumed")
        self.grant_id = grant_id
        # When the first use consumed it (refresh tokens: the grace period counts from here).
        self.consumed_at = consumed_at


class Unavailable(StorageError):
    """The database did not answer (down, slow, restarting): the request gets 503, nothing was decided."""


# The database did not answer, whichever layer noticed: the caller answers 503 (or falls back), never decides.
DATABASE_ERRORS: tuple[type[BaseException], ...] = (OperationalError, PoolTimeout, DBAPIError, OSError, TimeoutError, Unavailable)
