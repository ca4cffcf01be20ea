"""Signing keys: durable in SQL (private halves encrypted), served from memory.

States: ``next`` (published, not signing) → ``active`` (signing) → ``retired`` (published until every
token it signed has expired) → deleted; ``revoked`` leaves the JWKS at once (compromise).
The JWKS document is prepared once per change as bytes with an ETag, so serving it costs no I/O.
``KeyManager`` (``rotation.py``) reloads this view every ``keys.reload_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from authserver.clock import Clock
from authserver.keys.encryption import DecryptionError, Encryptor
from authserver.storage.sql.models import SigningKey

log = logging.getLogger("authserver.keys")

SUPPORTED_ALGS = ("ES256", "RS256", "EdDSA")
# PostgreSQL advisory lock serialising key creation and rotation across instances.
KEYS_LOCK_ID = 7310001
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


async def new_signing_key_row(alg: str, *, state: str, now: datetime, encryptor: Encryptor) -> SigningKey:
    """A new key pair as a row: kid = RFC 7638 thumbprint, private half encrypted and bound to the kid."""
    key = await asyncio.to_thread(generate_jose_key, alg)
    kid = key.thumbprint()
    public = dict(key.as_dict(private=False))
    public.update({"kid": kid, "alg": alg, "use": "sig"})
    return SigningKey(
        kid=kid,
        alg=alg,
        state=state,
        public_jwk=public,
        private_key_encrypted=encryptor.encrypt(key.as_pem(private=True), aad=kid.encode()),
        created_at=now,
        activated_at=now if state == "active" else None,
    )


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
        self._private_cache: dict[str, JoseKey] = {}

    async def create_key(self, alg: str, *, state: str) -> str:
        """Generate a key pair and store it; returns its kid (RFC 7638 thumbprint)."""
        row = await new_signing_key_row(alg, state=state, now=self._clock.now(), encryptor=self._encryptor)
        async with self._sessions.begin() as session:
            session.add(row)
        return row.kid

    async def ensure_active_keys(self) -> None:
        """First start: give every configured algorithm a key, once, whatever the number of instances.

        On a fresh install (no published key at all) the keys start ``active``: no verifier holds a JWKS
        yet. On an existing deployment an algorithm without keys gets a ``next`` key instead, which the
        rotation schedule activates once it has been published long enough (``keys.publish_ahead``).
        """
        async with self._sessions.begin() as session:
            if session.get_bind().dialect.name == "postgresql":
                # Serialise key creation across instances (Hydra's two-keys race); the rotation job takes the same lock.
                await session.execute(text(f"SELECT pg_advisory_xact_lock({KEYS_LOCK_ID})"))
            rows = (
                await session.execute(
                    select(SigningKey.alg, SigningKey.state).where(SigningKey.state.in_(PUBLISHED_STATES))
                )
            ).all()
            fresh_install = not rows
            covered = {alg for alg, state in rows if state in ("active", "next")}
            for alg in self.algs:
                if alg in covered:
                    continue
                state = "active" if fresh_install else "next"
                session.add(await new_signing_key_row(alg, state=state, now=self._clock.now(), encryptor=self._encryptor))
        await self.load()

    async def load(self) -> None:
        """Read the published keys from the database and rebuild the in-memory view and JWKS bytes.

        Only the private halves of ``active`` keys are decrypted (and kept, by kid, across reloads): the
        JWKS and verification need public halves only, so a key-encryption key problem never empties the JWKS.
        """
        async with self._sessions() as session:
            rows = (
                await session.scalars(
                    select(SigningKey)
                    .where(SigningKey.state.in_(PUBLISHED_STATES))
                    .order_by(SigningKey.created_at, SigningKey.kid)
                )
            ).all()
        loaded: list[LoadedKey] = []
        active: dict[str, LoadedKey] = {}
        private_cache: dict[str, JoseKey] = {}
        for row in sorted(rows, key=lambda r: (r.activated_at or r.created_at, r.kid)):
            if row.state != "active":
                continue
            private = self._private_cache.get(row.kid)
            if private is None:
                try:
                    pem = self._encryptor.decrypt(row.private_key_encrypted, aad=row.kid.encode())
                    private = _import_key(row.alg, row.kid, pem)
                except (DecryptionError, ValueError) as error:
                    log.error("signing key %s (%s) cannot be decrypted: %s", row.kid, row.alg, error)
                    continue
            private_cache[row.kid] = private
            # The most recently activated key of an algorithm signs.
            active[row.alg] = LoadedKey(kid=row.kid, alg=row.alg, state=row.state, key=private)
        public_jwks = [self._public_jwk(row) for row in rows]
        verification = KeySet.import_key_set({"keys": public_jwks}) if public_jwks else KeySet([])
        for row, key in zip(rows, verification.keys, strict=True):
            loaded.append(LoadedKey(kid=row.kid, alg=row.alg, state=row.state, key=key))  # type: ignore[arg-type]
        jwks_bytes = json.dumps({"keys": public_jwks}, separators=(",", ":")).encode()
        self._private_cache = private_cache
        self._published = loaded
        self._active = active
        self._verification_keys = verification
        self.jwks_bytes = jwks_bytes
        self.jwks_etag = '"' + hashlib.sha256(jwks_bytes).hexdigest()[:32] + '"'

    @staticmethod
    def _public_jwk(row: SigningKey) -> dict[str, Any]:
        allowed = {"kty", "crv", "x", "y", "n", "e", "kid", "alg", "use"}
        return {k: v for k, v in row.public_jwk.items() if k in allowed}

    def can_sign(self, alg: str) -> bool:
        return alg in self._active

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
