"""Run Alembic migrations from code (the CLI, start-up and tests), on PostgreSQL or SQLite."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from alembic import command
from alembic.config import Config


def migrations_dir() -> Path:
    """`migrations/` beside the package (editable install, Docker image) or named by AUTHSERVER_MIGRATIONS."""
    candidates = [
        os.environ.get("AUTHSERVER_MIGRATIONS"),
        Path(__file__).resolve().parents[3] / "migrations",
        Path.cwd() / "migrations",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "env.py").exists():
            return Path(candidate)
    raise FileNotFoundError("migrations/ not found: set AUTHSERVER_MIGRATIONS")


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Blocking; call from a thread when an event loop is running (env.py starts its own loop)."""
    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str, revision: str = "head") -> None:
    await asyncio.to_thread(upgrade, url, revision)
