"""Password hashing runs on a bounded pool of its own, so sign-in bursts cannot starve the event loop."""

from __future__ import annotations

import asyncio
import threading

from authserver.accounts.passwords import Passwords


async def test_verifications_run_on_at_most_max_concurrency_threads() -> None:
    passwords = Passwords(time_cost=1, memory_cost=1024, parallelism=1, max_concurrency=2)
    hashed = await passwords.hash("correct horse battery staple")
    seen: set[str] = set()
    hasher = passwords._hasher

    class Recording:
        def verify(self, hash_: str, password: str) -> bool:
            seen.add(threading.current_thread().name)
            return hasher.verify(hash_, password)

    passwords._hasher = Recording()  # type: ignore[assignment]
    results = await asyncio.gather(*(passwords.verify(hashed, "correct horse battery staple") for _ in range(12)))
    assert all(results)
    assert seen and len(seen) <= 2
    assert all(name.startswith("argon2") for name in seen)
