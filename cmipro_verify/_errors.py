"""Verification failures, each with the RFC 6750 §3.1 error code and the status a resource server answers."""

from __future__ import annotations


class TokenError(Exception):
    status = 401
    error = "invalid_token"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description

    def www_authenticate(self, realm: str | None = None) -> str:
        """The ``WWW-Authenticate`` value for the error response (RFC 6750 §3)."""
        parts = [f'realm="{realm}"'] if realm else []
        parts.append(f'error="{self.error}"')
        parts.append(f'error_description="{self.description}"')
        return "Bearer " + ", ".join(parts)


class InvalidToken(TokenError):
    """The token is missing, malformed, expired, for someone else, or its signature does not verify."""


class InsufficientScope(TokenError):
    """The token is valid but lacks a required scope or role."""

    status = 403
    error = "insufficient_scope"

    def __init__(self, description: str, *, scopes: tuple[str, ...] = ()) -> None:
        super().__init__(description)
        self.scopes = scopes

    def www_authenticate(self, realm: str | None = None) -> str:
        value = super().www_authenticate(realm)
        return value + (f', scope="{" ".join(self.scopes)}"' if self.scopes else "")


class Unavailable(TokenError):
    """What the decision needs from the authorization server cannot be fetched: not the caller's fault (503)."""

    status = 503
    error = "temporarily_unavailable"


class JWKSUnavailable(Unavailable):
    """No key set has ever been fetched (the authorization server is unreachable)."""


class RevocationUnavailable(Unavailable):
    """No revocation feed recent enough (``revocation_max_stale``) and ``on_revocation_unavailable="closed"``."""
