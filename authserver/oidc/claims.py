"""Claims by scope (OIDC Core §5.4): what UserInfo returns and what the ID token may carry."""

from __future__ import annotations

from typing import Any

from authserver.storage.sql.models import Account


def userinfo_claims(account: Account, scopes: list[str] | set[str]) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": account.account_id}
    if "profile" in scopes:
        claims["preferred_username"] = account.username
        if account.name:
            claims["name"] = account.name
        if account.locale:
            claims["locale"] = account.locale
        claims["updated_at"] = int(account.updated_at.timestamp())
    if "email" in scopes and account.email:
        claims["email"] = account.email
        claims["email_verified"] = account.email_verified
    return claims

