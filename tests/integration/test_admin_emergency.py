"""The admin API's emergency switch: GET the state, POST on (reason, duration) or off; bad input is a 4xx
JSON error, never a 500; without an admin token it is refused; every change is a security event."""

from __future__ import annotations

from datetime import datetime

import httpx

from authserver.services import Services
from tests.support.admin import admin_headers, client_token
from tests.support.factories import make_client

URL = "/admin/api/emergency"


async def test_admin_switches_emergency_mode_on_and_off(http: httpx.AsyncClient, services: Services) -> None:
    headers = await admin_headers(http, services)
    try:
        state = (await http.get(URL, headers=headers)).json()
        assert state["on"] is False
        response = await http.post(URL, headers=headers, json={"on": True, "reason": "huracán Eta", "duration_seconds": 600})
        assert response.status_code == 200, response.text
        state = response.json()
        assert state["on"] is True and state["reason"] == "huracán Eta" and state["by"].startswith("api:")
        until = datetime.fromisoformat(state["until"]) - datetime.fromisoformat(state["since"])
        assert until.total_seconds() == 600
        assert await services.limiter.emergency.is_on()
        assert (await http.get(URL, headers=headers)).json()["on"] is True
        off = await http.post(URL, headers=headers, json={"on": False, "reason": "over"})
        assert off.status_code == 200 and off.json()["on"] is False
        events = [e for e in await services.events.query(event="emergency", limit=50) if e["details"]["actor"] == state["by"]]
        assert [(e["outcome"], e["details"]["reason"]) for e in events] == [("off", "over"), ("on", "huracán Eta")]
    finally:
        await services.limiter.emergency.set(False, by="test")


async def test_bad_input_is_a_4xx_json_error(http: httpx.AsyncClient, services: Services) -> None:
    headers = await admin_headers(http, services)
    bad_bodies = [
        {}, {"on": "yes"}, {"on": True}, {"on": True, "reason": ""}, {"on": True, "reason": "x", "duration_seconds": 5},
        {"on": True, "reason": "x", "duration_seconds": "600"}, {"on": False, "duration_seconds": 600},
        {"on": True, "reason": "x", "extra": 1}, [], {"on": True, "reason": "x" * 301},
    ]
    for body in bad_bodies:
        response = await http.post(URL, headers=headers, json=body)
        assert response.status_code == 400, (body, response.text)
        assert response.json()["error"] == "invalid_request"
    assert (await http.post(URL, headers=headers, content=b"{", )).status_code == 415
    assert (await http.post(URL, headers={**headers, "Content-Type": "application/json"}, content=b"{")).status_code == 400
    assert (await http.put(URL, headers=headers, json={"on": True})).status_code == 405
    assert not await services.limiter.emergency.is_on()


async def test_refused_without_an_admin_token(http: httpx.AsyncClient, services: Services) -> None:
    assert (await http.get(URL)).status_code == 401
    assert (await http.post(URL, json={"on": True, "reason": "x"})).status_code == 401
    plain = await make_client(services, grant_types=["client_credentials"], scopes=["read:levels"], audience=[])
    headers = {"Authorization": f"Bearer {await client_token(http, plain, scope='read:levels')}"}
    assert (await http.post(URL, headers=headers, json={"on": True, "reason": "x"})).status_code == 403
    assert not await services.limiter.emergency.is_on()
