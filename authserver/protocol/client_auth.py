"""Client credentials as presented (RFC 6749 §2.3.1): HTTP Basic, the request body, or none.

Only extraction lives here; checking them against the registry is the endpoint's job.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from urllib.parse import unquote_plus

from authserver.errors import InvalidClient, InvalidRequest

# Control characters (NUL above all, which PostgreSQL text refuses) are never in an id or secret.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class PresentedCredentials:
    client_id: str
    secret: str | None = field(repr=False)
    # client_secret_basic, client_secret_post or none
    method: str


def extract(authorization: str | None, params: dict[str, str]) -> PresentedCredentials:
    body_id = params.get("client_id")
    body_secret = params.get("client_secret")
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


def _basic_error(description: str) -> InvalidClient:
    error = InvalidClient(description)
    error.headers["WWW-Authenticate"] = 'Basic realm="authserver"'
    return error
