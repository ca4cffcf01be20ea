"""AWS Lambda authorizer for CMIPRO access tokens, for API Gateway HTTP APIs and REST APIs.

- HTTP API (payload format 2.0, "simple responses" enabled): returns ``{"isAuthorized": bool, "context": …}``.
- REST API, TOKEN or REQUEST authorizer: returns an IAM policy; a missing or invalid token raises
  ``Exception("Unauthorized")``, which API Gateway turns into 401; a valid token without the required
  scope gets a Deny policy (403).

Configuration (environment variables of the function):

- ``CMIPRO_ISSUER`` (required): the authorization server's issuer, e.g. https://auth.cmipro.example
- ``CMIPRO_AUDIENCE`` (required): this API's identifier(s), comma-separated
- ``CMIPRO_REQUIRED_SCOPES``: space-separated scopes every request needs (default: none)
- ``CMIPRO_JWKS_URL``: default ``{CMIPRO_ISSUER}/jwks``

The verifier is built once per execution environment, so warm invocations reuse the cached JWKS and
make no network call; an unknown kid refetches the JWKS at most once every 30 seconds.
"""

from __future__ import annotations

import os
from typing import Any

from cmipro_verify import InsufficientScope, InvalidToken, JWKSUnavailable, Verifier, bearer_token

VERIFIER = Verifier(
    issuer=os.environ["CMIPRO_ISSUER"],
    audience=[a.strip() for a in os.environ["CMIPRO_AUDIENCE"].split(",") if a.strip()],
    jwks_url=os.environ.get("CMIPRO_JWKS_URL") or None,
)
REQUIRED_SCOPES = tuple(os.environ.get("CMIPRO_REQUIRED_SCOPES", "").split())


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("version") == "2.0":
        return _http_api(event)
    if event.get("type") in {"TOKEN", "REQUEST"}:
        return _rest_api(event)
    raise ValueError("unsupported authorizer event")


def _header(event: dict[str, Any]) -> str | None:
    headers = event.get("headers") or {}
    for name, value in headers.items():
        if name.lower() == "authorization":
            return str(value)
    return None


def _context(claims: Any) -> dict[str, str]:
    # Authorizer context values must be strings, numbers or booleans.
    return {
        "sub": claims.subject,
        "client_id": claims.client_id or "",
        "scope": " ".join(sorted(claims.scopes)),
        "roles": " ".join(sorted(claims.roles)),
    }


def _http_api(event: dict[str, Any]) -> dict[str, Any]:
    try:
        claims = VERIFIER.verify_authorization(_header(event)).require_scopes(*REQUIRED_SCOPES)
    except (InvalidToken, InsufficientScope) as error:
        print(f"authorizer: denied ({error.error}: {error.description})")
        return {"isAuthorized": False}
    except JWKSUnavailable:
        raise RuntimeError("authorization server keys unavailable") from None  # API Gateway answers 500
    return {"isAuthorized": True, "context": _context(claims)}


def _rest_api(event: dict[str, Any]) -> dict[str, Any]:
    authorization = event.get("authorizationToken") if event["type"] == "TOKEN" else _header(event)
    try:
        claims = VERIFIER.verify(bearer_token(authorization))
    except InvalidToken as error:
        print(f"authorizer: unauthorized ({error.description})")
        raise Exception("Unauthorized") from None  # noqa: TRY002 - the exact message API Gateway expects
    except JWKSUnavailable:
        raise RuntimeError("authorization server keys unavailable") from None
    try:
        claims.require_scopes(*REQUIRED_SCOPES)
        effect = "Allow"
    except InsufficientScope:
        effect = "Deny"
    # arn:aws:execute-api:region:account:api-id/stage/METHOD/path → allow the whole stage, so a cached
    # policy (authorizer caching is keyed by token) also covers the caller's other routes.
    arn = event["methodArn"].split("/")
    resource = "/".join(arn[:2]) + "/*/*"
    return {
        "principalId": claims.subject,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
        "context": _context(claims),
    }
