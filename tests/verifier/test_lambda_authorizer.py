"""examples/lambda_authorizer: API Gateway HTTP API (simple response) and REST API (IAM policy) events,
with real tokens from a running server."""

from __future__ import annotations

import asyncio
import importlib.util
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from tests.verifier.conftest import AUDIENCE, LiveServer

HANDLER = Path(__file__).resolve().parents[2] / "examples" / "lambda_authorizer" / "handler.py"
METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/GET/levels"


@pytest.fixture
def lambda_module(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """A cold start: the module is imported with the function's environment."""
    monkeypatch.setenv("CMIPRO_ISSUER", live.issuer)
    monkeypatch.setenv("CMIPRO_AUDIENCE", f"https://other.example, {AUDIENCE}")
    monkeypatch.setenv("CMIPRO_REQUIRED_SCOPES", "read:levels")
    monkeypatch.setenv("CMIPRO_REVOCATION_FRESHNESS", "0.2")
    spec = importlib.util.spec_from_file_location("lambda_authorizer_handler", HANDLER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def http_api_event(authorization: str | None) -> dict[str, object]:
    headers = {"authorization": authorization} if authorization else {}
    return {"version": "2.0", "type": "REQUEST", "routeArn": METHOD_ARN, "headers": headers,
            "identitySource": [authorization] if authorization else []}


async def test_http_api_simple_responses(live: LiveServer, lambda_module: ModuleType) -> None:
    client = await live.service_client()
    good = await live.token(client, "read:levels")
    allowed = lambda_module.handler(http_api_event(f"Bearer {good}"), None)
    assert allowed["isAuthorized"] is True
    assert allowed["context"]["client_id"] == client.client_id and allowed["context"]["scope"] == "read:levels"
    assert lambda_module.handler(http_api_event(None), None) == {"isAuthorized": False}
    assert lambda_module.handler(http_api_event(f"Bearer {good}x"), None) == {"isAuthorized": False}
    no_scope = await live.token(client, "read:alerts")
    assert lambda_module.handler(http_api_event(f"Bearer {no_scope}"), None) == {"isAuthorized": False}


async def test_rest_api_token_and_request_authorizers(live: LiveServer, lambda_module: ModuleType) -> None:
    client = await live.service_client()
    good = await live.token(client, "read:levels")
    policy = lambda_module.handler({"type": "TOKEN", "authorizationToken": f"Bearer {good}", "methodArn": METHOD_ARN}, None)
    assert policy["principalId"] == client.client_id
    statement = policy["policyDocument"]["Statement"][0]
    assert statement == {
        "Action": "execute-api:Invoke", "Effect": "Allow",
        "Resource": "arn:aws:execute-api:us-east-1:123456789012:abcdef123/prod/*/*",
    }
    no_scope = await live.token(client, "read:alerts")
    request_event = {"type": "REQUEST", "headers": {"Authorization": f"Bearer {no_scope}"}, "methodArn": METHOD_ARN}
    assert lambda_module.handler(request_event, None)["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    with pytest.raises(Exception, match="^Unauthorized$"):
        lambda_module.handler({"type": "TOKEN", "authorizationToken": "Bearer forged.token.here", "methodArn": METHOD_ARN}, None)
    with pytest.raises(Exception, match="^Unauthorized$"):
        lambda_module.handler({"type": "REQUEST", "headers": {}, "methodArn": METHOD_ARN}, None)


async def test_a_revoked_token_is_refused_by_the_warm_handler(live: LiveServer, lambda_module: ModuleType) -> None:
    """The module-level verifier (CMIPRO_REVOCATION_FRESHNESS) refetches the feed and refuses the token;
    polled, since the live server runs on the real clock."""
    client = await live.service_client()
    token = await live.token(client, "read:levels")
    keep = await live.token(client, "read:levels")
    assert lambda_module.VERIFIER.revocations.freshness == 0.2
    assert lambda_module.handler(http_api_event(f"Bearer {token}"), None)["isAuthorized"] is True
    async with httpx.AsyncClient(base_url=live.url) as http:
        revoked = await http.post("/revoke", data={"token": token}, auth=(client.client_id, client.secret))
        assert revoked.status_code == 200
    for _ in range(200):  # up to about a minute on a busy machine; normally a second or two
        if await asyncio.to_thread(lambda_module.handler, http_api_event(f"Bearer {token}"), None) == {"isAuthorized": False}:
            break
        await asyncio.sleep(0.3)
    else:
        pytest.fail("the revoked token was still authorized")
    with pytest.raises(Exception, match="^Unauthorized$"):
        lambda_module.handler({"type": "TOKEN", "authorizationToken": f"Bearer {token}", "methodArn": METHOD_ARN}, None)
    assert lambda_module.handler(http_api_event(f"Bearer {keep}"), None)["isAuthorized"] is True


async def test_dpop_bound_tokens_at_the_http_api(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """With CMIPRO_API_BASE_URL the authorizer checks DPoP proofs (RFC 9449); a stolen bound token fails."""
    from tests.support.dpop import Prover

    monkeypatch.setenv("CMIPRO_API_BASE_URL", "https://api.cmipro.example/")
    monkeypatch.setenv("CMIPRO_ISSUER", live.issuer)
    monkeypatch.setenv("CMIPRO_AUDIENCE", AUDIENCE)
    spec = importlib.util.spec_from_file_location("lambda_authorizer_dpop", HANDLER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    prover = Prover()
    client = await live.service_client()
    async with httpx.AsyncClient(base_url=live.url) as http:
        response = await http.post(
            "/token", data={"grant_type": "client_credentials", "scope": "read:levels"},
            auth=(client.client_id, client.secret or ""), headers={"DPoP": prover.proof("POST", f"{live.url}/token")},
        )
    token = response.json()["access_token"]

    def event(headers: dict[str, str]) -> dict[str, object]:
        return {"version": "2.0", "type": "REQUEST", "rawPath": "/levels", "headers": headers,
                "requestContext": {"http": {"method": "GET"}}}

    proof = prover.proof("GET", "https://api.cmipro.example/levels", access_token=token)
    assert module.handler(event({"authorization": f"DPoP {token}", "dpop": proof}), None)["isAuthorized"] is True
    assert module.handler(event({"authorization": f"DPoP {token}", "dpop": proof}), None) == {"isAuthorized": False}  # replay
    assert module.handler(event({"authorization": f"Bearer {token}"}), None) == {"isAuthorized": False}
    thief = Prover().proof("GET", "https://api.cmipro.example/levels", access_token=token)
    assert module.handler(event({"authorization": f"DPoP {token}", "dpop": thief}), None) == {"isAuthorized": False}
    two = f"{prover.proof('GET', 'https://api.cmipro.example/levels', access_token=token)},{proof}"  # API Gateway joins repeats
    assert module.handler(event({"authorization": f"DPoP {token}", "dpop": two}), None) == {"isAuthorized": False}
    with pytest.raises(Exception, match="^Unauthorized$"):
        module.handler({"type": "TOKEN", "authorizationToken": f"DPoP {token}", "methodArn": METHOD_ARN}, None)
