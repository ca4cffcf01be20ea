"""Signing keys: durable in SQL (private halves encrypted), served from memory.

States: ``next`` (published, not signing) → ``active`` (signing) → ``retired`` (published until every
token it signed has expired) → deleted; ``revoked`` leaves the JWKS at once (compromise).
The JWKS document is prepared once per change as bytes with an ETag, so serving it costs no I/O.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.clock import Clock
from authserver.keys.encryption import Encryptor
from authserver.storage.sql.models import SigningKey

# What we sign with and advertise. EdDSA is left out: joserfc refuses it ("not recommended", RFC 9864
# deprecates the polymorphic name), so advertising it would promise tokens we cannot sign.
SUPPORTED_ALGS = ("ES256", "RS256")
PUBLISHED_STATES = ("next", "active", "retired")

JoseKey = ECKey | RSAKey | OKPKey


def generate_jose_key(alg: str) -> JoseKey:
    if alg == "ES256":
        return ECKey.generate_key("P-256", private=True)
    if alg == "RS256":
        return RSAKey.generate_key(2048, private=True)
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519", private=True)
    raise ValueError(f"unsupported signing algorithm {alg}")


def _import_key(alg: str, kid: str, pem: bytes) -> JoseKey:
    cls: type[JoseKey] = {"ES256": ECKey, "RS256": RSAKey, "EdDSA": OKPKey}[alg]  # type: ignore[assignment]
    return cls.import_key(pem, parameters={"kid": kid, "alg": alg, "use": "sig"})


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    alg: str
    state: str
    key: JoseKey


class KeyStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        encryptor: Encryptor,
        *,
        algs: tuple[str, ...] = ("ES256", "RS256"),
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._encryptor = encryptor
        self.algs = algs
        self._active: dict[str, LoadedKey] = {}
        self._published: list[LoadedKey] = []
        self.jwks_bytes = b'{"keys":[]}'
        self.jwks_etag = '""'
        self._verification_keys = KeySet([])

    async def create_key(self, alg: str, *, state: str) -> str:
        """Generate a key pair and store it; returns its kid (RFC 7638 thumbprint)."""
        key = await asyncio.to_thread(generate_jose_key, alg)
        kid = key.thumbprint()
        public = dict(key.as_dict(private=False))
        public.update({"kid": kid, "alg": alg, "use": "sig"})
        pem = key.as_pem(private=True)
        now = self._clock.now()
        async with self._sessions.begin() as session:
            session.add(
                SigningKey(
                    kid=kid,
                    alg=alg,
                    state=state,
                    public_jwk=public,
                    private_key_encrypted=self._encryptor.encrypt(pem, aad=kid.encode()),
                    created_at=now,
                    activated_at=now if state == "active" else None,
                )
            )
        return kid

    async def ensure_active_keys(self) -> None:
        """First start: give every configured algorithm an active key, once, whatever the number of instances."""
        async with self._sessions.begin() as session:
            if session.bind.dialect.name == "postgresql":
                # Serialise first-start key creation across instances (Hydra's two-keys race).
                await session.execute(text("SELECT pg_advisory_xact_lock(7310001)"))
            active = set(
                (await session.scalars(select(SigningKey.alg).where(SigningKey.state == "active"))).all()
            )
            for alg in self.algs:
                if alg in active:
                    continue
                key = await asyncio.to_thread(generate_jose_key, alg)
                kid = key.thumbprint()
                public = dict(key.as_dict(private=False))
                public.update({"kid": kid, "alg": alg, "use": "sig"})
                now = self._clock.now()
                session.add(
                    SigningKey(
                        kid=kid, alg=alg, state="active", public_jwk=public,
                        private_key_encrypted=self._encryptor.encrypt(key.as_pem(private=True), aad=kid.encode()),
                        created_at=now, activated_at=now,
                    )
                )
        await self.load()

    async def load(self) -> None:
        """Read the published keys from the database and rebuild the in-memory view and JWKS bytes."""
        async with self._sessions() as session:
            rows = (
                await session.scalars(
                    select(SigningKey).where(SigningKey.state.in_(PUBLISHED_STATES)).order_by(SigningKey.created_at)
                )
            ).all()
        loaded: list[LoadedKey] = []
        active: dict[str, LoadedKey] = {}
        for row in rows:
            pem = self._encryptor.decrypt(row.private_key_encrypted, aad=row.kid.encode())
            item = LoadedKey(kid=row.kid, alg=row.alg, state=row.state, key=_import_key(row.alg, row.kid, pem))
            loaded.append(item)
            if row.state == "active":
                # The newest active key of an algorithm signs.
                active[row.alg] = item
        self._published = loaded
        self._active = active
        jwks = {"keys": [self._public_jwk(row) for row in rows]}
        self.jwks_bytes = json.dumps(jwks, separators=(",", ":")).encode()
        self.jwks_etag = '"' + hashlib.sha256(self.jwks_bytes).hexdigest()[:32] + '"'
        self._verification_keys = KeySet([item.key for item in loaded])

    @staticmethod
    def _public_jwk(row: SigningKey) -> dict[str, Any]:
        allowed = {"kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"}
        return {k: v for k, v in row.public_jwk.items() if k in allowed}

    def signing_key(self, alg: str) -> LoadedKey:
        try:
            return self._active[alg]
        except KeyError:
            raise LookupError(f"no active signing key for {alg}") from None

    @property
    def verification_keys(self) -> KeySet:
        return self._verification_keys

    @property
    def published(self) -> list[LoadedKey]:
        return list(self._published)
