"""A person's sessions and account over time: sign out (one session or everywhere), disable, enable and
erase (GDPR Art. 17). The admin API and the CLI call these; each takes effect on every instance at once.

- Ending one browser session revokes the token families bound to it: those created from that session
  without ``offline_access`` (OIDC Core §11: offline access is what outlives the session).
- Signing out everywhere ends every session and revokes every family, offline ones included.
- Disabling blocks sign-in and token issuance, denies every access token of the person at once
  (deny list), revokes every family and ends every session. Enabling lets the person sign in again;
  tokens from before stay dead.
- Erasure deletes the account and everything hanging from it (credentials, MFA, sessions, consents,
  codes, families, refresh tokens), denies outstanding access tokens, and rewrites the person's security
  events with a random pseudonym, so the log keeps its history without naming anyone.
"""

from __future__ import annotations

from authserver.services import Services
from authserver.storage.errors import NotFound
from authserver.tokens.opaque import new_id
from authserver.tokens.revocation import issued_before_reenabling


async def end_session(services: Services, account_id: str, session_digest: str, *, reason: str = "logout", ip: str | None = None) -> bool:
    """End one of the person's browser sessions and the families bound to it. True if it was live."""
    ended = await services.lifecycle.end_sessions(account_id, session_digest=session_digest)
    grant_ids = await services.lifecycle.live_grant_ids(
        account_id=account_id, session_digest=session_digest, session_bound_only=True
    )
    revoked = await services.revocations.revoke_grants(grant_ids, reason=reason)
    if ended:
        await services.events.record("logout", "success", account_id=account_id, ip=ip, scope="session", grants_revoked=revoked)
    return bool(ended)


async def sign_out_everywhere(services: Services, account_id: str, *, reason: str = "sign_out_everywhere", ip: str | None = None) -> int:
    """End every session of the person and revoke every token family. Returns the families revoked."""
    return await _end_sessions_and_families(services, account_id, keep=None, reason=reason, ip=ip)


async def sign_out_other_sessions(
    services: Services, account_id: str, *, keep: str | None = None, keep_grant: str | None = None, reason: str,
    ip: str | None = None,
) -> int:
    """After a credential changed (password, second factor; ASVS 5 7.4.3): end every session of the person
    but ``keep`` (the digest of the browser session that made the change) and revoke every token family
    but ``keep_grant`` (the family of the API token that made it), offline ones included, so nothing
    obtained with the old credential lives on. Returns the families revoked."""
    return await _end_sessions_and_families(services, account_id, keep=keep, keep_grant=keep_grant, reason=reason, ip=ip)


async def _end_sessions_and_families(
    services: Services, account_id: str, *, keep: str | None, reason: str, ip: str | None, keep_grant: str | None = None
) -> int:
    ended = await services.lifecycle.end_sessions(account_id, keep=keep)
    grant_ids = [g for g in await services.lifecycle.live_grant_ids(account_id=account_id) if g != keep_grant]
    revoked = await services.revocations.revoke_grants(grant_ids, reason=reason)
    await services.events.record(
        "logout", "success", account_id=account_id, ip=ip, scope="other_sessions" if keep or keep_grant else "everywhere",
        reason=reason, sessions_ended=len(ended), grants_revoked=revoked,
    )
    return revoked


async def withdraw_consent(services: Services, account_id: str, client_id: str, *, ip: str | None = None) -> bool:
    """The person takes back what they allowed a client: the consent goes (the next request asks again)
    and every token family of theirs at that client is revoked. True if there was a consent."""
    withdrawn = await services.consents.withdraw(account_id, client_id)
    grant_ids = await services.lifecycle.live_grant_ids(account_id=account_id, client_id=client_id)
    revoked = await services.revocations.revoke_grants(grant_ids, reason="consent_withdrawn")
    if withdrawn or revoked:
        await services.events.record(
            "consent", "withdrawn", account_id=account_id, client_id=client_id, ip=ip, grants_revoked=revoked
        )
    return withdrawn


async def disable_account(services: Services, account_id: str, *, actor: str | None = None) -> None:
    """Raises NotFound for an unknown account."""
    await services.accounts.set_disabled(account_id, True)  # first: nothing new can be issued
    await services.revocations.deny_account(account_id)  # then: every outstanding access token is inactive
    await services.lifecycle.end_sessions(account_id)
    grant_ids = await services.lifecycle.live_grant_ids(account_id=account_id)
    await services.revocations.revoke_grants(grant_ids, reason="account_disabled")
    await services.events.record("account_disabled", "success", account_id=account_id, actor=actor)


async def enable_account(services: Services, account_id: str, *, actor: str | None = None) -> None:
    """Raises NotFound for an unknown account. Tokens issued before the account was disabled stay inactive."""
    account = await services.accounts.get(account_id)
    if account is None:
        raise NotFound(account_id)
    await services.accounts.set_disabled(account_id, False)
    if account.disabled_at is not None:
        await services.revocations.deny_account(account_id, not_before=issued_before_reenabling(account.disabled_at))
    await services.events.record("account_enabled", "success", account_id=account_id, actor=actor)


async def delete_account(services: Services, account_id: str, *, actor: str | None = None) -> str:
    """Erase the account; returns the pseudonym its security events now carry. Raises NotFound."""
    if await services.accounts.get(account_id) is None:
        raise NotFound(account_id)
    await services.revocations.deny_account(account_id)
    pseudonym = f"deleted-{new_id(12)}"
    # Buffered events naming the person must be in the table before it is pseudonymised.
    await services.events.flush()
    if not await services.lifecycle.erase_account(account_id, pseudonym=pseudonym):
        raise NotFound(account_id)
    await services.events.record("account_deleted", "success", account_id=pseudonym, actor=actor)
    return pseudonym
