"""Client registration rules that protect the protocol: ids safe in Basic credentials and URLs, signing algs we hold keys for."""

from __future__ import annotations

import pytest

from authserver.services import Services
from tests.support.factories import make_client


async def test_client_ids_outside_the_unreserved_set_are_refused(services: Services) -> None:
    for client_id in ["a:b", "a+b", "a b", "a%3Ab", "é", "", "x" * 65, "a/b", "a\x00b"]:
        with pytest.raises(ValueError, match="client_id"):
            await make_client(services, client_id=client_id)


async def test_unreserved_client_ids_are_accepted(services: Services) -> None:
    client = await make_client(services, client_id="Ab-9._~z" + services.clock.now().strftime("%H%M%S%f"))
    assert await services.clients.get(client.client_id) is not None
