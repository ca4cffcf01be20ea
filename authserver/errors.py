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
    └── TemporarilyUnavailable (503) temporarily_unavailable

``description`` goes to the client; ``debug`` is only logged.
"""

from __future__ import annotations

import re
from typing import ClassVar

# RFC 6749 §5.2: error_description is %x20-21 / %x23-5B / %x5D-7E.
_DESCRIPTION_OK = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]*")


class OAuthError(Exception):
    error: ClassVar[str] = "server_error"
    status_code: ClassVar[int] = 400
    default_description: ClassVar[str] = ""

    def __init__(self, description: str | None = None, *, debug: str | None = None) -> None:
        description = self.default_description if description is None else description
        if not _DESCRIPTION_OK.fullmatch(description):
            raise ValueError(f"error_description has characters RFC 6749 §5.2 forbids: {description!r}")
        super().__init__(description)
        self.description = description
        self.debug = debug
        self.headers: dict[str, str] = {}

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
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


__all__ = [name for name, value in dict(globals()).items() if isinstance(value, type) and issubclass(value, OAuthError)]
