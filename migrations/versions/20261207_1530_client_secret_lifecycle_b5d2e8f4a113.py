"""client secret lifecycle: labels, revocation, rotation link, pending delivery, usage; client owner contacts

Revision ID: b5d2e8f4a113
Revises: bc4eaa8ee757
Create Date: 2026-12-07 15:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import authserver.storage.sql.models

revision: str = "b5d2e8f4a113"
down_revision: str | None = "bc4eaa8ee757"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = authserver.storage.sql.models.UTCDateTime


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("owner_email", sa.String(length=320), nullable=True))
        batch.add_column(sa.Column("notification_webhook", sa.String(length=2000), nullable=True))
        batch.add_column(sa.Column("webhook_secret_encrypted", sa.Text(), nullable=True))
    with op.batch_alter_table("client_secrets") as batch:
        batch.add_column(sa.Column("label", sa.String(length=64), server_default="default", nullable=False))
        batch.add_column(sa.Column("revoked_at", UTC(), nullable=True))
        batch.add_column(sa.Column("rotated_at", UTC(), nullable=True))
        batch.add_column(sa.Column("replaces_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("pending_secret_encrypted", sa.Text(), nullable=True))
        batch.add_column(sa.Column("last_used_at", UTC(), nullable=True))
        batch.add_column(sa.Column("use_count", sa.BigInteger(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("client_secrets") as batch:
        for name in ("use_count", "last_used_at", "pending_secret_encrypted", "replaces_id", "rotated_at", "revoked_at", "label"):
            batch.drop_column(name)
    with op.batch_alter_table("clients") as batch:
        for name in ("webhook_secret_encrypted", "notification_webhook", "owner_email"):
            batch.drop_column(name)
