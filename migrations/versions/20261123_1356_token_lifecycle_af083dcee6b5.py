"""Token lifecycle: the durable deny list, and indexes the purge job and logout walk (grants, browser sessions).

Revision ID: af083dcee6b5
Revises: 1b795163e19a
Create Date: 2026-11-23 13:56:22.997742
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import authserver.storage.sql.models

revision: str = "af083dcee6b5"
down_revision: str | None = "1b795163e19a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deny_list",
        sa.Column("entry", sa.String(length=160), nullable=False),
        sa.Column("not_before", sa.String(length=32), nullable=False),
        sa.Column("created_at", authserver.storage.sql.models.UTCDateTime(), nullable=False),
        sa.Column("expires_at", authserver.storage.sql.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("entry", name=op.f("pk_deny_list")),
    )
    with op.batch_alter_table("deny_list", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deny_list_expires_at"), ["expires_at"], unique=False)
    with op.batch_alter_table("browser_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_browser_sessions_expires_at"), ["expires_at"], unique=False)
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_grants_expires_at"), ["expires_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_grants_session_digest"), ["session_digest"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_grants_session_digest"))
        batch_op.drop_index(batch_op.f("ix_grants_expires_at"))
    with op.batch_alter_table("browser_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_browser_sessions_expires_at"))
    with op.batch_alter_table("deny_list", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deny_list_expires_at"))
    op.drop_table("deny_list")
