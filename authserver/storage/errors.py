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


def is_bad_input(error: BaseException) -> bool:
    """A database refusal caused by the value sent, not an outage: SQLSTATE class 22 "data exception"
    (a NUL byte in text, a string too long for its column, a number out of range). Validation refuses
    these before the database; this is the boundary's safety net, answered 400, never 503."""
    if not isinstance(error, DBAPIError) or isinstance(error, OperationalError):
        return False
    original = error.orig
    state = getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)
    if state is None:  # asyncpg's exception hides under the adapter's
        state = getattr(getattr(original, "__cause__", None), "sqlstate", None)
    return isinstance(state, str) and state.startswith("22")
