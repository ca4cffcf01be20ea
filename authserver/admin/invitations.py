"""Invitation codes for sign-up (``self_service.signup_requires_invitation``), shared by the admin API
(``/admin/api/invitations``) and the CLI (``authserver invitation``).

A code is shown once, when it is made; only its SHA-256 digest is stored. Each has a use count
(``max_uses``, default 1) and an expiry (``ttl_seconds``, default ``self_service.invitation_ttl``).
Every change is a security event with the actor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from authserver.admin.models import InvitationCreate, read
from authserver.admin.service import Actor, listing
from authserver.admin.validation import has_control_characters, not_found, page
from authserver.services import Services
from authserver.storage.sql.invitations import describe

# Limits: admin/models.InvitationCreate (max_uses 1-10000, ttl_seconds 60 s - 365 days, note 1-200 printable).


async def create_invitation(services: Services, data: Any, *, actor: Actor) -> dict[str, Any]:
    """``{"max_uses": 1, "ttl_seconds": 604800, "note": "…"}`` (all optional) → the invitation and its ``code``."""
    _, given = read(InvitationCreate, {} if data is None else data)
    max_uses, ttl, note = given.get("max_uses"), given.get("ttl_seconds"), given.get("note")
    made = await services.invitations.create(
        ttl=ttl or services.settings.self_service.invitation_ttl, max_uses=max_uses or 1, note=note, created_by=actor.label(),
    )
    await services.events.record(
        "invitation", "created", actor=actor.describe(), invitation=made.invitation.invitation_id, max_uses=made.invitation.max_uses,
    )
    return {**describe(made.invitation, services.clock.now()), "code": made.code}


async def list_invitations(services: Services, params: Mapping[str, str]) -> dict[str, Any]:
    limit, offset = page(params, allowed=set())
    rows = await services.invitations.list(limit=limit + 1, offset=offset)
    now = services.clock.now()
    return listing([describe(row, now) for row in rows[:limit]], limit, offset, len(rows) > limit)


async def get_invitation(services: Services, invitation_id: str) -> dict[str, Any]:
    if has_control_characters(invitation_id):  # never reaches PostgreSQL (NUL)
        raise not_found("invitation")
    row = await services.invitations.get(invitation_id)
    if row is None:
        raise not_found("invitation")
    return describe(row, services.clock.now())


async def revoke_invitation(services: Services, invitation_id: str, *, actor: Actor) -> dict[str, Any]:
    if has_control_characters(invitation_id):
        raise not_found("invitation")
    row = await services.invitations.revoke(invitation_id)
    if row is None:
        raise not_found("invitation")
    await services.events.record("invitation", "revoked", actor=actor.describe(), invitation=invitation_id)
    return describe(row, services.clock.now())
