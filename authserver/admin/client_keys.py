"""Client metadata of JWT client authentication and PAR, read the same way by the admin API, the CLI and
RFC 7591 registration: ``jwks``, ``jwks_uri``, ``token_endpoint_auth_signing_alg``,
``require_pushed_authorization_requests``, and how they fit ``token_endpoint_auth_method``.

Problems come back as ``{"field", "message"}`` items (the admin API's shape); registration turns the first
into ``invalid_client_metadata``, the CLI into an exit message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from authserver.grants.client_assertion import CLIENT_SECRET_JWT_ALGS, PRIVATE_KEY_JWT_ALGS
from authserver.protocol.jwks import jwks_problem, jwks_uri_problem

KEY_FIELDS = ("jwks", "jwks_uri", "token_endpoint_auth_signing_alg", "require_pushed_authorization_requests")
ALL_SIGNING_ALGS = (*PRIVATE_KEY_JWT_ALGS, *CLIENT_SECRET_JWT_ALGS)

Problems = list[dict[str, str]]


def read_key_metadata(data: Mapping[str, Any], *, https_only: bool) -> tuple[dict[str, Any], Problems]:
    """The KEY_FIELDS present in ``data``, checked one by one (``null`` clears the three nullable ones)."""
    values: dict[str, Any] = {}
    problems: Problems = []
    for name in KEY_FIELDS:
        if name not in data:
            continue
        value = data[name]
        if name == "require_pushed_authorization_requests":
            problem = None if isinstance(value, bool) else "must be true or false"
        elif value is None:
            problem = None
        elif name == "jwks":
            problem = jwks_problem(value)
        elif name == "jwks_uri":
            problem = "must be a string" if not isinstance(value, str) else jwks_uri_problem(value, https_only=https_only)
        else:
            problem = None if value in ALL_SIGNING_ALGS else f"must be one of {', '.join(ALL_SIGNING_ALGS)}"
        if problem:
            problems.append({"field": name, "message": problem})
        else:
            values[name] = value
    return values, problems


def key_consistency_problems(merged: Mapping[str, Any]) -> Problems:
    """How the key metadata fits the client's method (``merged``: the client after the change)."""
    method = merged.get("token_endpoint_auth_method")
    alg = merged.get("token_endpoint_auth_signing_alg")
    problems: Problems = []
    if merged.get("jwks") and merged.get("jwks_uri"):
        problems.append({"field": "jwks_uri", "message": "give jwks or jwks_uri, not both"})
    if method == "private_key_jwt" and not (merged.get("jwks") or merged.get("jwks_uri")):
        problems.append({"field": "jwks", "message": "private_key_jwt needs jwks or jwks_uri"})
    if alg is not None:
        allowed = {"private_key_jwt": PRIVATE_KEY_JWT_ALGS, "client_secret_jwt": CLIENT_SECRET_JWT_ALGS}.get(str(method), ())
        if alg not in allowed:
            problems.append({"field": "token_endpoint_auth_signing_alg", "message": f"does not fit {method}"})
    return problems


def key_metadata_view(info: Any) -> dict[str, Any]:
    """The KEY_FIELDS of a ClientInfo, for responses."""
    return {name: getattr(info, name) for name in KEY_FIELDS}
