"""Verification failures, each with the RFC 6750 §3.1 error code and the status a resource server answers."""

from __future__ import annotations


class TokenError(Exception):
    status = 401
    error = "invalid_token"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description
        # The challenge's scheme: Bearer, or DPoP with its algs (RFC 9449 §7.1) for a DPoP request.
        self.scheme = "Bearer"
        self.scheme_params: list[str] = []

    def as_dpop(self, algorithms: tuple[str, ...]) -> TokenError:
        """Challenge with ``DPoP algs="…"`` instead of Bearer (the request used, or needed, DPoP)."""
        self.scheme = "DPoP"
        self.scheme_params = [f'algs="{" ".join(algorithms)}"']
        return self

    def www_authenticate(self, realm: str | None = None) -> str:
        """The ``WWW-Authenticate`` value for the error response (RFC 6750 §3, RFC 9449 §7.1)."""
        parts = list(self.scheme_params)
        if realm:
            parts.append(f'realm="{realm}"')
        parts.append(f'error="{self.error}"')
        parts.append(f'error_description="{self.description}"')
        return f"{self.scheme} " + ", ".join(parts)


class InvalidToken(TokenError):
    """The token is missing, malformed, expired, for someone else, or its signature does not verify."""


class InvalidDpopProof(InvalidToken):
    """The DPoP proof is missing, malformed, replayed, or not made for this request, token or key (RFC 9449 §7.1)."""

    error = "invalid_dpop_proof"


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
