"""``sessions()`` reads on autocommit connections and refuses writes; ``sessions.begin()`` stays one transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from authserver.services import Services
from authserver.storage.sql.engine import ReadOnlyWrite
from authserver.storage.sql.models import Client
from tests.support.factories import make_client


async def test_a_write_through_a_read_session_is_refused(services: Services) -> None:
    client = await make_client(services)
    with pytest.raises(ReadOnlyWrite):
        async with services.sessions() as session:
            await session.execute(update(Client).where(Client.client_id == client.client_id).values(name="changed"))
    with pytest.raises(ReadOnlyWrite):
        async with services.sessions() as session:
            row = await session.get(Client, client.client_id)
            assert row is not None
            row.name = "changed"
            await session.commit()
    async with services.sessions() as session:
        assert await session.scalar(select(Client.name).where(Client.client_id == client.client_id)) == "Test App"


async def test_begin_is_still_one_transaction(services: Services) -> None:
    client = await make_client(services)
    with pytest.raises(RuntimeError):
        async with services.sessions.begin() as session:
            await session.execute(update(Client).where(Client.client_id == client.client_id).values(name="changed"))
            raise RuntimeError("abort")
    async with services.sessions() as session:
        assert await session.scalar(select(Client.name).where(Client.client_id == client.client_id)) == "Test App"
