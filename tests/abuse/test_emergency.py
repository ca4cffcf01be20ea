"""Emergency mode: an operator switch, shared by every instance, that tightens anonymous and sign-in limits."""

from __future__ import annotations

from collections.abc import Callable

from authserver.cli import main
from authserver.settings import Settings
from tests.abuse.conftest import running
from tests.support.factories import make_client


async def test_emergency_tightens_sign_in_but_not_machine_tokens(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(login_per_ip=8, authorize_per_ip=8, token_per_client=10, emergency_divisor=4)
    async with running(settings) as run, running(settings, clock=run.clock) as other_instance:
        client = await make_client(run.services, grant_types=["client_credentials"])
        await run.services.limiter.emergency.set(True, by="test", reason="hurricane")
        try:
            await _check_tightened(run, other_instance, client)
        finally:
            await run.services.limiter.emergency.set(False, by="test")
        run.clock.advance(6)
        assert not await other_instance.services.limiter.emergency.is_on()
        events = await run.services.events.query(event="emergency")
        assert [e["outcome"] for e in events[:2]] == ["off", "on"]
        assert events[1]["details"]["reason"] == "hurricane"
        denied = await run.services.events.query(event="ratelimit", ip=run.ip)
        assert denied and all(e["details"]["emergency"] for e in denied)


async def _check_tightened(run, other_instance, client) -> None:  # type: ignore[no-untyped-def]
    assert [(await run.http.get("/login?i=x")).status_code for _ in range(3)] == [400, 400, 429]
    assert [(await run.http.get("/authorize")).status_code for _ in range(3)] == [400, 400, 429]
    auth = (client.client_id, client.secret or "")
    tokens = [(await run.http.post("/token", data={"grant_type": "client_credentials"}, auth=auth)).status_code for _ in range(10)]
    assert tokens == [200] * 10
    for _ in range(10):
        assert (await run.http.get("/jwks")).status_code == 200
        assert (await run.http.get("/.well-known/openid-configuration")).status_code == 200
    # Another instance reads the shared switch within its 5-second cache.
    run.clock.advance(6)
    assert await other_instance.services.limiter.emergency.is_on()


def test_emergency_cli(settings: Settings, monkeypatch, capsys, backend: str, database_url: str, tmp_root) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import environ_for

    for key, value in environ_for(backend, database_url, tmp_root).items():
        monkeypatch.setenv(key, value)
    try:
        assert main(["emergency", "on", "--reason", "drill", "--json"]) == 0
        assert '"on": true' in capsys.readouterr().out
        assert main(["emergency", "status", "--json"]) == 0
        assert '"reason": "drill"' in capsys.readouterr().out
    finally:
        assert main(["emergency", "off"]) == 0
    capsys.readouterr()
    assert main(["events", "--event", "emergency", "--limit", "50"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "actor=cli:" in line]
    assert any(" off " in line for line in lines) and any(" on " in line and "reason=drill" in line for line in lines)
