"""A real HTTP receiver for notification webhooks: an asyncio server on 127.0.0.1 (in the test's own event
loop) that keeps every request it gets and answers with the statuses it is told, then 200."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from standardwebhooks import Webhook


@dataclass
class Delivery:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def signed_by(self, webhook_secret: str) -> bool:
        """The signature checks out with the Standard Webhooks reference implementation (its ``sign``;
        ``verify`` would also compare the timestamp with the wall clock, which the tests move)."""
        timestamp = datetime.fromtimestamp(int(self.headers["webhook-timestamp"]), tz=UTC)
        expected = Webhook(webhook_secret).sign(self.headers["webhook-id"], timestamp, self.body.decode())
        return expected in self.headers["webhook-signature"].split(" ")


@dataclass
class Receiver:
    port: int = 0
    # Statuses to answer before the default 200 (e.g. [503, 503] for two failures).
    fail_with: list[int] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    attempts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/authserver"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.attempts += 1
            status = self.fail_with.pop(0) if self.fail_with else 200
            if status == 200:
                self.deliveries.append(Delivery(method, path, headers, body))
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def webhook_receiver(*fail_with: int) -> AsyncIterator[Receiver]:
    receiver = Receiver(fail_with=list(fail_with))
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()
