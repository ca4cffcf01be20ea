"""The MFA JSON API for mobile apps (RFC 6750 Bearer tokens with the mfa:manage scope, RFC 6238 TOTP)."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx

from authserver.mfa import totp
from tests.support.factories import (
    ALL_SCOPES,
    AppClient,
    Person,
    authorize,
    make_client,
    make_user,
    redeem,
)
from tests.support.mfa import MfaEnv, mfa_env


async def _access_token(env: MfaEnv, client: AppClient, user: Person, scope: str) -> dict[str, str]:
    params, verifier = await authorize(env.http, client, user, scope=scope)
    response = await redeem(env.http, client, params["code"], verifier)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_mobile_enrolment_through_the_api(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        client = await make_client(env.services, scopes=[*ALL_SCOPES, "mfa:manage"], audience=[env.services.settings.server.issuer])
        user = await make_user(env.services)
        tokens = await _access_token(env, client, user, "openid mfa:manage")
        auth = _bearer(tokens["access_token"])
        status = await env.http.get("/api/me/mfa", headers=auth)
        assert status.status_code == 200 and status.json()["totp_enabled"] is False
        started = await env.http.post("/api/me/mfa/totp", headers=auth)
        assert started.status_code == 200, started.text
        assert started.headers["cache-control"] == "no-store"
        body = started.json()
        assert body["otpauth_uri"].startswith(f"otpauth://totp/CMIPRO:{user.username}?secret={body['secret']}")
        assert body["qr_png"].startswith("data:image/png;base64,")
        assert base64.b64decode(body["qr_png"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
        assert body["qr_svg"].startswith("<svg")
        # Starting again before confirming shows the same secret (a retry does not break the scanned one).
        assert (await env.http.post("/api/me/mfa/totp", headers=auth)).json()["secret"] == body["secret"]
        wrong = await env.http.post("/api/me/mfa/totp/confirm", headers=auth, json={"code": "12345"})
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_code"
        confirmed = await env.http.post(
            "/api/me/mfa/totp/confirm", headers=auth, json={"code": totp.code_at(body["secret"], env.clock.now())}
        )
        assert confirmed.status_code == 200, confirmed.text
        codes = confirmed.json()["backup_codes"]
        assert len(codes) == 10
        again = await env.http.post("/api/me/mfa/totp", headers=auth)
        assert again.status_code == 409 and again.json()["error"] == "mfa_already_enabled"
        status = (await env.http.get("/api/me/mfa", headers=auth)).json()
        assert status == {"totp_enabled": True, "backup_codes_remaining": 10, "backup_codes_low": False}
        # Regenerate with a current code; the confirming code itself is spent (replay).
        replay = await env.http.post(
            "/api/me/mfa/backup-codes/regenerate", headers=auth, json={"code": totp.code_at(body["secret"], env.clock.now())}
        )
        assert replay.status_code == 400 and replay.json()["error"] == "invalid_code"
        env.clock.advance(30)
        regenerated = await env.http.post(
            "/api/me/mfa/backup-codes/regenerate", headers=auth, json={"code": totp.code_at(body["secret"], env.clock.now())}
        )
        assert regenerated.status_code == 200
        new_codes = regenerated.json()["backup_codes"]
        assert not set(new_codes) & set(codes)
        # Turning off needs the password and a code.
        no_password = await env.http.request("DELETE", "/api/me/mfa/totp", headers=auth, json={"backup_code": new_codes[0]})
        assert no_password.status_code == 400 and no_password.json()["error"] == "invalid_credentials"
        old_code = await env.http.request("DELETE", "/api/me/mfa/totp", headers=auth, json={"password": user.password, "backup_code": codes[0]})
        assert old_code.status_code == 400 and old_code.json()["error"] == "invalid_code"
        off = await env.http.request("DELETE", "/api/me/mfa/totp", headers=auth, json={"password": user.password, "backup_code": new_codes[0]})
        assert off.status_code == 200 and off.json() == {"totp_enabled": False}
        assert (await env.http.get("/api/me/mfa", headers=auth)).json()["totp_enabled"] is False


async def test_api_refuses_tokens_without_the_scope_or_revoked(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        client = await make_client(env.services, scopes=[*ALL_SCOPES, "mfa:manage"], audience=[env.services.settings.server.issuer])
        user = await make_user(env.services)
        tokens = await _access_token(env, client, user, "openid profile")
        refused = await env.http.post("/api/me/mfa/totp", headers=_bearer(tokens["access_token"]))
        assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
        assert 'scope="mfa:manage"' in refused.headers["www-authenticate"]
        missing = await env.http.post("/api/me/mfa/totp")
        assert missing.status_code == 401 and missing.headers["www-authenticate"].startswith("Bearer")
        forged = await env.http.get("/api/me/mfa", headers=_bearer("eyJ.forged.token"))
        assert forged.status_code == 401 and forged.json()["error"] == "invalid_token"
        # A client_credentials token may not carry the person-only scope.
        cc = await env.http.post(
            "/token", data={"grant_type": "client_credentials", "scope": "mfa:manage"}, auth=(client.client_id, client.secret or "")
        )
        assert cc.status_code == 400 and cc.json()["error"] == "invalid_scope"
        # A token whose grant was revoked (code reuse) stops working at once.
        params, verifier = await authorize(env.http, client, user, scope="openid mfa:manage")
        good = await redeem(env.http, client, params["code"], verifier)
        token = good.json()["access_token"]
        assert (await env.http.get("/api/me/mfa", headers=_bearer(token))).status_code == 200
        await redeem(env.http, client, params["code"], verifier)
        revoked = await env.http.get("/api/me/mfa", headers=_bearer(token))
        assert revoked.status_code == 401 and revoked.json()["error"] == "invalid_token"
        account = await env.services.accounts.get(user.account_id)
        assert account is not None and account.totp_secret_encrypted is None  # nothing was started


async def test_api_rejects_bad_bodies_and_methods_without_changes(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        client = await make_client(env.services, scopes=[*ALL_SCOPES, "mfa:manage"], audience=[env.services.settings.server.issuer])
        user = await make_user(env.services)
        auth = _bearer((await _access_token(env, client, user, "mfa:manage"))["access_token"])
        cases: list[tuple[str, str, dict[str, object]]] = [
            ("POST", "/api/me/mfa/totp/confirm", {"content": b"{not json", "headers": {**auth, "content-type": "application/json"}}),
            ("POST", "/api/me/mfa/totp/confirm", {"json": ["a list"], "headers": auth}),
            ("POST", "/api/me/mfa/totp/confirm", {"json": {"code": 123456}, "headers": auth}),
            ("POST", "/api/me/mfa/totp/confirm", {"data": {"code": "123456"}, "headers": auth}),
            ("POST", "/api/me/mfa/totp/confirm", {"content": b"{" + b" " * 10_000 + b"}", "headers": {**auth, "content-type": "application/json"}}),
        ]
        for method, path, kwargs in cases:
            response = await env.http.request(method, path, **kwargs)  # type: ignore[arg-type]
            assert response.status_code == 400 and response.json()["error"] == "invalid_request", response.text
        not_started = await env.http.post("/api/me/mfa/totp/confirm", headers=auth, json={"code": "123456"})
        assert not_started.status_code == 409 and not_started.json()["error"] == "no_pending_enrolment"
        put = await env.http.put("/api/me/mfa/totp", headers=auth)
        assert put.status_code == 405
        not_enabled = await env.http.request("DELETE", "/api/me/mfa/totp", headers=auth, json={"password": user.password, "code": "123456"})
        assert not_enabled.status_code == 409 and not_enabled.json()["error"] == "mfa_not_enabled"
        account = await env.services.accounts.get(user.account_id)
        assert account is not None and account.totp_secret_encrypted is None and account.mfa_failed_attempts == 0


async def test_api_lock_after_wrong_codes(backend: str, database_url: str, tmp_root: Path) -> None:
    async with mfa_env(backend, database_url, tmp_root) as env:
        client = await make_client(env.services, scopes=[*ALL_SCOPES, "mfa:manage"], audience=[env.services.settings.server.issuer])
        user = await make_user(env.services)
        auth = _bearer((await _access_token(env, client, user, "mfa:manage"))["access_token"])
        secret = (await env.http.post("/api/me/mfa/totp", headers=auth)).json()["secret"]
        await env.http.post("/api/me/mfa/totp/confirm", headers=auth, json={"code": totp.code_at(secret, env.clock.now())})
        env.clock.advance(30)
        answers: list[httpx.Response] = []
        for _ in range(5):
            answers.append(await env.http.post("/api/me/mfa/backup-codes/regenerate", headers=auth, json={"backup_code": "AAAA-BBBB-CCCC"}))
        assert [a.status_code for a in answers] == [400, 400, 400, 400, 429]
        assert answers[-1].json()["error"] == "mfa_locked" and int(answers[-1].headers["retry-after"]) > 0
        good = await env.http.post(
            "/api/me/mfa/backup-codes/regenerate", headers=auth, json={"code": totp.code_at(secret, env.clock.now())}
        )
        assert good.status_code == 429
