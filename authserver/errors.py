"""OAuth 2.0 and OpenID Connect errors (RFC 6749 §4.1.2.1, §5.2; RFC 6750 §3; OIDC Core §3.1.2.6).

    OAuthError
    ├── InvalidRequest              invalid_request
    ├── InvalidClient (401)         invalid_client
    ├── InvalidGrant                invalid_grant
    ├── UnauthorizedClient          unauthorized_client
    ├── UnsupportedGrantType        unsupported_grant_type
    ├── UnsupportedResponseType     unsupported_response_type
    ├── UnsupportedTokenType        unsupported_token_type
    ├── InvalidScope                invalid_scope
    ├── AccessDenied (403)          access_denied
    ├── InvalidToken (401)          invalid_token
    ├── InsufficientScope (403)     insufficient_scope
    ├── LoginRequired               login_required
    ├── InteractionRequired         interaction_required
    ├── ConsentRequired             consent_required
    ├── RequestNotSupported         request_not_supported
    ├── RequestUriNotSupported      request_uri_not_supported
    ├── InvalidTarget               invalid_target
    ├── InvalidDpopProof            invalid_dpop_proof (RFC 9449 §5; 401 at a resource, §7.1)
    ├── UseDpopNonce                use_dpop_nonce (RFC 9449 §8-9; with a DPoP-Nonce header)
    ├── SlowDown / TooManyRequests (429)  rate_limited
    ├── ServerError (500)           server_error
    ├── TemporarilyUnavailable (503) temporarily_unavailable
    ├── AdminError (any status)     the admin API's refusals, with per-field ``errors``
    └── RegistrationError           RFC 7591 §3.2.2 (invalid_client_metadata, invalid_redirect_uri)

This is the one error family of every endpoint. Each channel has one renderer and one catch-all:
OAuth JSON and admin JSON in ``endpoints/_http.py`` (``oauth_json``, ``admin_json``: RFC 6749 §5.2 JSON
with ``no-store``), HTML pages in ``web/pages.py`` (``html_page``: the error page). Anything outside the
family becomes a logged, generic 500 in the channel's format; a database error caused by the input
(SQLSTATE class 22) a 400; a dependency that does not answer a 503 ``temporarily_unavailable``.

``description`` goes to the client; ``debug`` is only logged.
"""

from __future__ import annotations

import re
from typing import Any

# RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E.
_DESCRIPTION_OK = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]*")


class OAuthError(Exception):
    # Class defaults; AdminError and RegistrationError set them per instance.
    error: str = "server_error"
    status_code: int = 400
    default_description: str = ""

    def __init__(self, description: str | None = None, *, debug: str | None = None) -> None:
        description = self.default_description if description is None else description
        if not _DESCRIPTION_OK.fullmatch(description):
            raise ValueError(f"error_description has characters RFC 6749 §5.2 forbids: {description!r}")
        super().__init__(description)
        self.description = description
        self.debug = debug
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    error = "invalid_client"
    status_code = 401
    default_description = "Client authentication failed."


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class UnsupportedTokenType(OAuthError):
    error = "unsupported_token_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class InvalidTarget(OAuthError):
    error = "invalid_target"


class InvalidDpopProof(OAuthError):
    error = "invalid_dpop_proof"
    default_description = "The DPoP proof is invalid."


class UseDpopNonce(OAuthError):
    error = "use_dpop_nonce"
    default_description = "Resend the request with a DPoP proof that carries the nonce of the DPoP-Nonce header."


class AccessDenied(OAuthError):
    error = "access_denied"
    status_code = 403


class InvalidToken(OAuthError):
    error = "invalid_token"
    status_code = 401


class InsufficientScope(OAuthError):
    error = "insufficient_scope"
    status_code = 403


class LoginRequired(OAuthError):
    error = "login_required"


class InteractionRequired(OAuthError):
    error = "interaction_required"


class ConsentRequired(OAuthError):
    error = "consent_required"


class RequestNotSupported(OAuthError):
    error = "request_not_supported"


class RequestUriNotSupported(OAuthError):
    error = "request_uri_not_supported"


class TooManyRequests(OAuthError):
    error = "rate_limited"
    status_code = 429
    default_description = "Too many requests. Retry later."


class ServerError(OAuthError):
    error = "server_error"
    status_code = 500
    default_description = "The server could not complete the request."


class TemporarilyUnavailable(OAuthError):
    error = "temporarily_unavailable"
    status_code = 503
    default_description = "The service is temporarily unavailable. Retry later."


class AdminError(OAuthError):
    """An admin API refusal: HTTP status, a stable code, a message, and per-field problems
    (``[{"field": ..., "message": ...}]``). Messages may quote input, so they are not held to §5.2's set."""

    def __init__(self, status: int, code: str, message: str, errors: list[dict[str, str]] | None = None) -> None:
        Exception.__init__(self, message)
        self.error = code
        self.status_code = status
        self.description = message
        self.debug = None
        self.errors = errors or []
        self.headers = {}
        if status in (401, 403) and code in ("invalid_token", "insufficient_scope"):
            quoted = message.replace("\\", "").replace('"', "'")
            self.headers["WWW-Authenticate"] = f'Bearer realm="authserver-admin", error="{code}", error_description="{quoted}"'

    @property
    def status(self) -> int:
        return self.status_code

    @property
    def code(self) -> str:
        return self.error

    @property
    def message(self) -> str:
        return self.description

    def body(self) -> dict[str, Any]:
        body = super().body()
        if self.errors:
            body["errors"] = self.errors
        return body


class RegistrationError(OAuthError):
    """RFC 7591 §3.2.2 error response: ``invalid_client_metadata``, ``invalid_redirect_uri``, …"""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.status_code = status

    @property
    def status(self) -> int:
        return self.status_code


__all__ = [name for name, value in dict(globals()).items() if isinstance(value, type) and issubclass(value, OAuthError)]
