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
- ``CMIPRO_REVOCATION_FRESHNESS``: seconds the cached revocation feed is used before it is fetched again
  (default 30): a revoked token, family, person or client is refused within about this long
- ``CMIPRO_REVOCATION_MAX_STALE``: how long past its freshness the last good feed serves while the server
  is unreachable (default 300 seconds)
- ``CMIPRO_ON_REVOCATION_UNAVAILABLE``: ``closed`` (default: refuse, API Gateway answers 500) or ``open``
  (accept valid tokens unchecked, with a warning in the log) once the feed is older than that
- ``CMIPRO_REVOCATION_CHECK``: ``false`` to turn the revocation check off
- ``CMIPRO_REVOCATION_URL``: default ``{CMIPRO_ISSUER}/revocations``
- ``CMIPRO_API_BASE_URL``: this API's public base URL (e.g. https://api.cmipro.example), needed to accept
  DPoP-bound tokens (RFC 9449): a proof names the URL it was made for. Without it, DPoP tokens are refused.

DPoP-bound tokens (``Authorization: DPoP <token>`` plus a ``DPoP`` proof) are checked by the HTTP API and
REST REQUEST authorizers. A proof is single use, so such routes need authorizer caching off (TTL 0) and the
``DPoP`` header among the identity sources; the REST TOKEN authorizer sees only the token and refuses
bound tokens. The jti replay cache is per execution environment (docs/sender-constrained-tokens.md).

Mutual TLS (RFC 8705): with a custom domain that has mutual TLS on, API Gateway passes the client certificate
in ``requestContext.identity.clientCert.clientCertPem`` (REST API REQUEST authorizer) or
``requestContext.authentication.clientCert.clientCertPem`` (HTTP API); it is handed to the verifier, so a
token bound to a certificate (``cnf.x5t#S256``) passes only with that certificate. A TOKEN authorizer sees
no certificate: it refuses bound tokens. Tokens without ``cnf`` are not affected.

The verifier is built once per execution environment, so warm invocations reuse the cached JWKS and
revocation feed: the JWKS is fetched when its max-age runs out (or once every 30 seconds for an unknown
kid), the feed at most once per freshness period.

API Gateway's authorizer result cache (``authorizerResultTtlInSeconds``) adds its TTL to how long a
revoked token keeps passing: keep it at or below the freshness, or 0.
"""

from __future__ import annotations

import os
from typing import Any

from cmipro_verify import InsufficientScope, InvalidToken, Unavailable, Verifier, bearer_token

VERIFIER = Verifier(
    issuer=os.environ["CMIPRO_ISSUER"],
    audience=[a.strip() for a in os.environ["CMIPRO_AUDIENCE"].split(",") if a.strip()],
    jwks_url=os.environ.get("CMIPRO_JWKS_URL") or None,
    revocation_check=os.environ.get("CMIPRO_REVOCATION_CHECK", "true").strip().lower() not in {"0", "false", "no", "off"},
    revocation_url=os.environ.get("CMIPRO_REVOCATION_URL") or None,
    revocation_freshness=float(os.environ.get("CMIPRO_REVOCATION_FRESHNESS") or 30),
    revocation_max_stale=float(os.environ.get("CMIPRO_REVOCATION_MAX_STALE") or 300),
    on_revocation_unavailable="open" if os.environ.get("CMIPRO_ON_REVOCATION_UNAVAILABLE", "").strip().lower() == "open" else "closed",
)
REQUIRED_SCOPES = tuple(os.environ.get("CMIPRO_REQUIRED_SCOPES", "").split())
API_BASE_URL = (os.environ.get("CMIPRO_API_BASE_URL") or "").rstrip("/")


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("version") == "2.0":
        return _http_api(event)
    if event.get("type") in {"TOKEN", "REQUEST"}:
        return _rest_api(event)
    raise ValueError("unsupported authorizer event")


def _header(event: dict[str, Any], wanted: str = "authorization") -> str | None:
    headers = event.get("headers") or {}
    for name, value in headers.items():
        if name.lower() == wanted:
            return str(value)
    return None


def _verify(event: dict[str, Any], authorization: str | None, method: str, path: str) -> Any:
    """Bearer, or DPoP with its proof (for the URL under CMIPRO_API_BASE_URL; none configured: refused), and
    the certificate binding of an mTLS-bound token."""
    certificate = _client_certificate(event)
    if not API_BASE_URL:
        return VERIFIER.verify_authorization(authorization, client_certificate=certificate)
    return VERIFIER.verify_request(
        authorization, dpop=_header(event, "dpop"), method=method, url=API_BASE_URL + path, client_certificate=certificate
    )


def _client_certificate(event: dict[str, Any]) -> str | None:
    """The mutual-TLS client certificate (PEM) API Gateway verified, if the domain has mTLS on."""
    context = event.get("requestContext") or {}
    for holder in ("identity", "authentication"):
        cert = ((context.get(holder) or {}).get("clientCert") or {}).get("clientCertPem")
        if isinstance(cert, str) and cert:
            return cert
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
        http = (event.get("requestContext") or {}).get("http") or {}
        claims = _verify(event, _header(event), str(http.get("method", "")), str(event.get("rawPath", ""))).require_scopes(*REQUIRED_SCOPES)
    except (InvalidToken, InsufficientScope) as error:
        print(f"authorizer: denied ({error.error}: {error.description})")
        return {"isAuthorized": False}
    except Unavailable as error:
        # Keys or revocation feed unreachable for too long: not the caller's fault; API Gateway answers 500.
        raise RuntimeError(f"authorization server unavailable: {error.description}") from None
    return {"isAuthorized": True, "context": _context(claims)}


def _rest_api(event: dict[str, Any]) -> dict[str, Any]:
    authorization = event.get("authorizationToken") if event["type"] == "TOKEN" else _header(event)
    try:
        if event["type"] == "TOKEN":
            claims = VERIFIER.verify(bearer_token(authorization), client_certificate=_client_certificate(event))
        else:
            claims = _verify(event, authorization, str(event.get("httpMethod", "")), str(event.get("path", "")))
    except InvalidToken as error:
        print(f"authorizer: unauthorized ({error.description})")
        raise Exception("Unauthorized") from None  # noqa: TRY002 - the exact message API Gateway expects
    except Unavailable as error:
        raise RuntimeError(f"authorization server unavailable: {error.description}") from None
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
