"""Password hashing with argon2id (argon2-cffi), always off the event loop.

Parameters default to OWASP's minimum for argon2id (m=19 MiB, t=2, p=1). Passwords longer than
MAX_PASSWORD_CHARS are refused before hashing so one request cannot buy unbounded CPU.

Policy (NIST SP 800-63B §5.1.1.2): at least 12 characters, at most 256, not one of the common passwords
shipped in ``authserver/data/common-passwords.txt.gz``; no composition rules beyond that.

Hashing runs on a small dedicated thread pool (``max_concurrency`` threads per worker process, default
one: a worker is one core), not the default executor: argon2 is CPU- and memory-bound, so more parallel
hashes than cores only starve the event loop (Redis and database replies then time out) and keep 19 MiB
of heap per extra thread. Extra sign-ins queue instead (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import functools
import gzip
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_CHARS = 12
MAX_PASSWORD_CHARS = 256


COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent.parent / "data" / "common-passwords.txt.gz"


class PasswordPolicyError(ValueError):
    pass


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lower-cased (loaded once)."""
    with gzip.open(COMMON_PASSWORDS_FILE, "rt", encoding="utf-8") as handle:
        return frozenset(line.strip().lower() for line in handle if line.strip())


def is_common(password: str) -> bool:
    return password.strip().lower() in common_passwords()


class Passwords:
    def __init__(
        self, *, time_cost: int = 2, memory_cost: int = 19 * 1024, parallelism: int = 1, max_concurrency: int = 1
    ) -> None:
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost, parallelism=parallelism)
        self._executor = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="argon2")
        # Verified against when the username is unknown, so both paths cost the same (no enumeration by timing).
        self._dummy_hash = self._hasher.hash("dummy password for unknown users")

    def check_policy(self, password: str) -> None:
        if len(password) < MIN_PASSWORD_CHARS:
            raise PasswordPolicyError(f"password must have at least {MIN_PASSWORD_CHARS} characters")
        if len(password) > MAX_PASSWORD_CHARS:
            raise PasswordPolicyError(f"password must have at most {MAX_PASSWORD_CHARS} characters")
        if is_common(password):
            raise PasswordPolicyError("password is too common; choose another")

    async def hash(self, password: str) -> str:
        self.check_policy(password)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True if the password matches; with no hash (unknown user) a dummy verification keeps timing equal."""
        if len(password) > MAX_PASSWORD_CHARS:
            password = password[:MAX_PASSWORD_CHARS]
            password_hash = None
        target = password_hash or self._dummy_hash
        try:
            ok = await asyncio.get_running_loop().run_in_executor(self._executor, self._hasher.verify, target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return ok and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
