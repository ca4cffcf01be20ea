"""The verified claims of a token, with helpers for scopes (RFC 9068 §2.2.3) and CMIPRO roles."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from cmipro_verify._errors import InsufficientScope


class Claims(Mapping[str, Any]):
    """Read-only claims; ``claims["sub"]`` works as with a dict."""

    def __init__(self, claims: Mapping[str, Any], header: Mapping[str, Any]) -> None:
        self._claims = dict(claims)
        self.header = dict(header)

    def __getitem__(self, name: str) -> Any:
        return self._claims[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._claims)

    def __len__(self) -> int:
        return len(self._claims)

    def __repr__(self) -> str:
        return f"Claims(sub={self.subject!r}, client_id={self.client_id!r}, scope={sorted(self.scopes)!r})"

    @property
    def subject(self) -> str:
        return str(self._claims.get("sub", ""))

    @property
    def client_id(self) -> str | None:
        value = self._claims.get("client_id")
        return value if isinstance(value, str) else None

    @property
    def scopes(self) -> frozenset[str]:
        value = self._claims.get("scope")
        return frozenset(value.split()) if isinstance(value, str) else frozenset()

    @property
    def roles(self) -> frozenset[str]:
        value = self._claims.get("roles")
        return frozenset(r for r in value if isinstance(r, str)) if isinstance(value, list) else frozenset()

    @property
    def is_user(self) -> bool:
        """A person's token (authorization code flow) rather than a service's (client credentials)."""
        return self.subject != self.client_id

    def has_scopes(self, *scopes: str) -> bool:
        return set(scopes) <= self.scopes

    def require_scopes(self, *scopes: str) -> Claims:
        """Every scope given must have been granted, else :class:`InsufficientScope`."""
        missing = tuple(s for s in scopes if s not in self.scopes)
        if missing:
            raise InsufficientScope(f"missing scope {' '.join(missing)}", scopes=tuple(scopes))
        return self

    def require_any_role(self, *roles: str) -> Claims:
        """At least one of the roles given (e.g. "premium_user", "admin"), else :class:`InsufficientScope`."""
        if roles and not (set(roles) & self.roles):
            raise InsufficientScope(f"requires one of the roles {' '.join(roles)}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dict(self._claims)
