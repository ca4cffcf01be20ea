"""Storage outcomes, in storage words (grants translate them into OAuth errors)."""


class StorageError(Exception):
    pass


class NotFound(StorageError):
    pass


class Conflict(StorageError):
    """A unique value (username, client id) is taken."""


class AlreadyConsumed(StorageError):
    """A single-use value (code, refresh token) was presented again."""

    def __init__(self, grant_id: str | None) -> None:
        super().__init__("already consumed")
        self.grant_id = grant_id


class Unavailable(StorageError):
    """The database did not answer (down, slow, restarting): the request gets 503, nothing was decided."""
