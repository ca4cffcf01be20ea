"""Client credentials as presented (RFC 6749 §2.3.1): HTTP Basic, the request body, a JWT assertion
(RFC 7523 §2.2, OIDC Core §9: private_key_jwt and client_secret_jwt), or none.

Only extraction lives here; checking them against the registry is the endpoint's job.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from joserfc import jws
from joserfc.errors import JoseError

from authserver.errors import InvalidClient, InvalidRequest
from authserver.protocol.certificates import ClientCertificate

# RFC 7523 §2.2: the only client_assertion_type we accept.
JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# HMAC algorithms (client_secret_jwt); any other alg is private_key_jwt.
HMAC_ALGS = frozenset({"HS256", "HS384", "HS512"})

# Control characters (NUL above all, which PostgreSQL text refuses) are never in an id or secret.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A client id as the registry allows it (storage/sql/clients.CLIENT_ID); an assertion's sub is held to it
# before any lookup, so JSON escapes (lone surrogates, NUL) never reach the database.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._~-]{1,64}")


@dataclass(frozen=True)
class PresentedCredentials:
    client_id: str
    secret: str | None = field(repr=False)
    # client_secret_basic, client_secret_post, private_key_jwt, client_secret_jwt or none
    method: str
    # The JWT of private_key_jwt / client_secret_jwt (unverified), with its decoded header and claims.
    assertion: str | None = field(default=None, repr=False)
    assertion_header: dict[str, Any] = field(default_factory=dict, repr=False)
    assertion_claims: dict[str, Any] = field(default_factory=dict, repr=False)
    # The request's TLS client certificate (RFC 8705), set by the endpoint: see grants.base.authenticate_client.
    certificate: ClientCertificate | None = field(default=None, repr=False)


def extract(authorization: str | None, params: dict[str, str]) -> PresentedCredentials:
    body_id = params.get("client_id")
    body_secret = params.get("client_secret")
    if "client_assertion" in params or "client_assertion_type" in params:
        if authorization is not None or body_secret is not None:
            raise InvalidRequest("Use one client authentication method, not several.")
        return _assertion(params.get("client_assertion_type"), params.get("client_assertion"), body_id)
    if authorization is not None:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            # RFC 6749 §5.2: the client tried the Authorization header, so 401 + WWW-Authenticate.
            raise _basic_error("Unsupported authorization scheme.")
        if body_secret is not None:
            raise InvalidRequest("Use one client authentication method, not several.")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise _basic_error("Malformed Basic credentials.") from None
        raw_id, sep, raw_secret = decoded.partition(":")
        if not sep:
            raise _basic_error("Malformed Basic credentials.")
        client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        if not client_id or _CONTROL.search(client_id) or _CONTROL.search(secret):
            # Control characters (NUL above all, which PostgreSQL text refuses) are never in an id or secret.
            raise _basic_error("Malformed Basic credentials.")
        if body_id is not None and body_id != client_id:
            raise InvalidRequest("client_id does not match the authenticated client.")
        return PresentedCredentials(client_id, secret, "client_secret_basic")
    if body_id is None:
        raise InvalidClient("Client authentication is required.")
    if body_secret is not None:
        return PresentedCredentials(body_id, body_secret, "client_secret_post")
    return PresentedCredentials(body_id, None, "none")


def _assertion(assertion_type: str | None, assertion: str | None, body_id: str | None) -> PresentedCredentials:
    """RFC 7523 §3.2 / §2.2: the assertion names the client in ``sub``; checked here only for shape.

    The signature, audience, lifetime and replay are checked against the registry (grants/client_assertion.py).
    """
    if assertion_type != JWT_BEARER_ASSERTION or not assertion:
        raise InvalidClient("client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer with a client_assertion.")
    try:
        compact = jws.extract_compact(assertion.encode("ascii"))
        header = dict(compact.protected)
        claims = json.loads(compact.payload)
    except (JoseError, ValueError, UnicodeError, TypeError):
        raise InvalidClient("Malformed client assertion.") from None
    subject = claims.get("sub") if isinstance(claims, dict) else None
    alg = header.get("alg")
    if not isinstance(subject, str) or not _CLIENT_ID.fullmatch(subject) or not isinstance(alg, str):
        raise InvalidClient("Malformed client assertion.")
    if body_id is not None and body_id != subject:
        raise InvalidClient("client_id does not match the client assertion.")
    method = "client_secret_jwt" if alg in HMAC_ALGS else "private_key_jwt"
    return PresentedCredentials(subject, None, method, assertion, header, claims)


def _basic_error(description: str) -> InvalidClient:
    error = InvalidClient(description)
    error.headers["WWW-Authenticate"] = 'Basic realm="authserver"'
    return error
