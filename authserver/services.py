"""The objects one running server shares between requests, built once by ``app.create_app``."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from authserver.abuse import RateLimits
from authserver.accounts.lockout import Lockout
from authserver.accounts.passwords import Passwords
from authserver.chaos import Chaos
from authserver.clock import Clock
from authserver.events import SecurityEvents
from authserver.keys.client_jwks import ClientKeys
from authserver.keys.encryption import Encryptor
from authserver.keys.keystore import KeyStore
from authserver.keys.rotation import KeyManager
from authserver.mail import Mailer
from authserver.metrics import Metrics
from authserver.mfa.service import MfaService
from authserver.settings import Settings
from authserver.storage.cache import Cache
from authserver.storage.sql.account_tokens import SqlAccountTokenStore
from authserver.storage.sql.invitations import SqlInvitationStore
from authserver.storage.sql.accounts import SqlAccountStore
from authserver.storage.sql.clients import SqlClientStore
from authserver.storage.sql.fastpath import PgFastPath
from authserver.storage.sql.lifecycle import SqlLifecycleStore
from authserver.storage.sql.sessions import SqlConsentStore, SqlSessionStore
from authserver.storage.sql.tokens import SqlTokenStore
from authserver.tokens.dpop import DpopGuard
from authserver.tokens.feed import RevocationFeed
from authserver.tokens.jwt import TokenSigner
from authserver.tokens.revocation import Revocations


@dataclass
class Services:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    cache: Cache
    encryptor: Encryptor
    clients: SqlClientStore
    accounts: SqlAccountStore
    tokens: SqlTokenStore
    browser_sessions: SqlSessionStore
    consents: SqlConsentStore
    keys: KeyStore
    signer: TokenSigner
    passwords: Passwords
    events: SecurityEvents
    # Token lifecycle (docs/token-lifecycle.md): deny list, family/session revocation, erasure, purge.
    lifecycle: SqlLifecycleStore
    revocations: Revocations
    # The deny list signed for offline verifiers (GET /revocations, authserver/tokens/feed.py).
    revocation_feed: RevocationFeed
    mfa: MfaService
    key_manager: KeyManager
    # Abuse protection (docs/abuse-protection.md): rate-limit guard (+ emergency switch) and brute-force locks.
    limiter: RateLimits
    lockout: Lockout
    metrics: Metrics
    # Self-service (docs/self-service.md): single-use mailed links and the SMTP sender (mail.host empty: off).
    account_tokens: SqlAccountTokenStore
    mailer: Mailer
    # Invitation codes for sign-up (self_service.signup_requires_invitation), digests only.
    invitations: SqlInvitationStore
    # DPoP proofs (RFC 9449): jti replay across instances and the stateless server nonce (tokens/dpop.py).
    dpop: DpopGuard
    # PostgreSQL only: refresh rotation in one statement (storage/sql/fastpath.py); None on SQLite.
    fast_path: PgFastPath | None = None
    # Run-time fault injection (authserver/chaos.py); None in production.
    chaos: Chaos | None = None
    # Clients' public keys for private_key_jwt (jwks / jwks_uri); made on first use (grants/client_assertion.py).
    client_keys: ClientKeys | None = None

    async def close(self) -> None:
        """Deliver queued mail, write buffered security events, then close the cache, the limiter and the database pool."""
        await self.mailer.close()
        await self.clients.usage.close()
        await self.events.close()
        if self.fast_path is not None:
            await self.fast_path.close()
        await self.cache.close()
        await self.limiter.close()
        if self.client_keys is not None:
            await self.client_keys.close()
        await self.engine.dispose()
