"""`authserver serve` tunes the garbage collector once start-up is done (app.tune_garbage_collector);
apps built for tests leave it alone, since many share one process."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from asgi_lifespan import LifespanManager

from authserver.app import GC_THRESHOLD, create_app
from authserver.settings import load_settings
from tests.conftest import environ_for, fast_passwords


async def test_server_process_freezes_start_up_objects_and_raises_the_threshold(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gc.db'}"
    from authserver.storage.sql.migrate import upgrade

    await asyncio.to_thread(upgrade, url)
    settings = load_settings(environ_for("sqlite", url, tmp_path))
    before = gc.get_threshold()
    try:
        async with LifespanManager(create_app(settings, passwords=fast_passwords())):
            assert gc.get_threshold() == before and gc.get_freeze_count() == 0
        async with LifespanManager(create_app(settings, passwords=fast_passwords(), server_process=True)):
            assert gc.get_threshold()[0] == GC_THRESHOLD
            assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
