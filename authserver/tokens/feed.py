"""The signed revocation feed: the live deny list as one JWT, for verifiers that check tokens offline
(``cmipro_verify``, the Lambda authorizer). Served at ``GET /revocations``; see docs/verifying-tokens.md.

The issue allowed the IETF OAuth Token Status List draft or an equivalent signed feed. We publish the deny
list itself: it already exists, is durable and shared by every instance, and costs the token endpoint
nothing (a status list would need an index per token, allocated and written as the token is issued).

Document (header ``typ: revocation-list+jwt``, signed with the current key of the default algorithm, so
the JWKS verifies it)::

    {"iss": "<issuer>", "iat": 1767225600, "exp": 1767226200,
     "revoked": {"jti": ["<jti>", …], "gid": ["<grant id>", …],
                 "acct": {"<account id>": "inf" | <not_before>, …},
                 "client": {"<client id>": "inf" | <not_before>, …}}}

A token is revoked when its ``jti`` or ``gid`` is listed, when it is a person's token (it has ``gid``) and
its ``sub`` is in ``acct``, or when its ``client_id`` is in ``client`` — for a ``not_before`` number only
if the token's ``iat`` is before it (``Revocations._matches``).

Each instance reads the table at most once a second (:data:`BUILD_INTERVAL`), however many verifiers
poll, and signs a new document only when the entries or the signing key change, or every
:data:`RESIGN_INTERVAL` seconds, so a verifier polling with ``If-None-Match`` mostly gets 304. While the
table cannot be read, the last document keeps serving (unchanged, so with its own exp): no revocation can
be recorded meanwhile, since every one is written to the table first.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from authserver.clock import Clock
from authserver.storage.errors import DATABASE_ERRORS
from authserver.storage.sql.lifecycle import DenyEntry, SqlLifecycleStore
from authserver.tokens.jwt import TokenSigner

log = logging.getLogger("authserver.revocation")

INFINITE = "inf"
# Seconds between two reads of the deny-list table on one instance.
BUILD_INTERVAL = 1.0
# Seconds after which an unchanged document is signed again (its exp moves on).
RESIGN_INTERVAL = 60.0
SET_KINDS = ("jti", "gid")  # always "inf": a listed token or family is revoked outright
ISSUED_BEFORE_KINDS = ("acct", "client")  # "inf", or tokens issued before a time


def _published(not_before: str) -> str | int | float:
    if not_before == INFINITE:
        return INFINITE
    try:
        limit = float(not_before)
    except ValueError:
        return INFINITE  # unreadable entry: fail closed, as Revocations._matches does
    return int(limit) if limit.is_integer() else limit


def revoked_section(entries: Iterable[DenyEntry]) -> dict[str, Any]:
    """The ``revoked`` claim: deny entries grouped by kind, sorted, so equal lists give equal documents."""
    sets: dict[str, list[str]] = {kind: [] for kind in SET_KINDS}
    maps: dict[str, dict[str, str | int | float]] = {kind: {} for kind in ISSUED_BEFORE_KINDS}
    for entry in sorted(entries, key=lambda e: e.entry):
        kind, _, ident = entry.entry.partition(":")
        if not ident:
            continue
        if kind in sets:
            sets[kind].append(ident)
        elif kind in maps:
            maps[kind][ident] = _published(entry.not_before)
    return {**sets, **maps}


@dataclass(frozen=True)
class FeedDocument:
    token: bytes  # the compact JWS
    etag: str
    kid: str
    revoked: dict[str, Any]
    signed_at: float


class RevocationFeed:
    def __init__(self, *, store: SqlLifecycleStore, signer: TokenSigner, clock: Clock, lifetime: int) -> None:
        self._store = store
        self._signer = signer
        self._clock = clock
        self._lifetime = lifetime
        self._document: FeedDocument | None = None
        self._checked_at = float("-inf")
        self._lock: asyncio.Lock | None = None
        self.table_reads = 0  # for monitoring and tests

    def _current_enough(self, now: float) -> bool:
        # The kid too: after an emergency key revocation the next request gets a document signed anew.
        document = self._document
        return (
            document is not None and 0 <= now - self._checked_at < BUILD_INTERVAL
            and document.kid == self._signer.signing_kid()
        )

    async def current(self) -> FeedDocument:
        """The document to serve: at most one table read per :data:`BUILD_INTERVAL`, one at a time."""
        now = self._clock.now().timestamp()
        if self._current_enough(now):
            return self._document  # type: ignore[return-value]  # _current_enough checked it
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # concurrent requests wait for one read instead of each making their own
            now = self._clock.now().timestamp()
            if self._current_enough(now):
                return self._document  # type: ignore[return-value]
            self.table_reads += 1
            document = self._document
            try:
                revoked = revoked_section(await self._store.live_deny_entries())
            except DATABASE_ERRORS:
                # Every revocation is written to this table first, so while it cannot be read none can be
                # recorded either: the list we last read is still the whole list (but for a write that
                # committed in the last second). Serve it until its exp; try the table again in a second.
                if document is None or now >= document.signed_at + self._lifetime - RESIGN_INTERVAL:
                    raise
                log.warning("deny list unreadable: serving the revocation feed read at %d", document.signed_at)
                self._checked_at = now
                return document
            if (
                document is None
                or document.revoked != revoked
                or document.kid != self._signer.signing_kid()
                or not 0 <= now - document.signed_at < RESIGN_INTERVAL
            ):
                document = self._sign(revoked, now)
            self._document, self._checked_at = document, now
            return document

    def _sign(self, revoked: dict[str, Any], now: float) -> FeedDocument:
        iat = int(now)
        claims = {"iss": self._signer.issuer, "iat": iat, "exp": iat + self._lifetime, "revoked": revoked}
        token = self._signer.revocation_list(claims).encode("ascii")
        etag = '"' + hashlib.sha256(token).hexdigest()[:32] + '"'
        return FeedDocument(token, etag, self._signer.signing_kid(), revoked, now)
