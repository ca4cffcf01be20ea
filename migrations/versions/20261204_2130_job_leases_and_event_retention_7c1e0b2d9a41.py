"""job leases (single-runner background jobs) and the index the event retention purge uses

Revision ID: 7c1e0b2d9a41
Revises: 97e098f81097
Create Date: 2026-12-04 21:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import authserver.storage.sql.models

revision: str = "7c1e0b2d9a41"
down_revision: str | None = "97e098f81097"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PERSONAL_DATA = "ip IS NOT NULL OR user_agent IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "job_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=True),
        sa.Column("lease_until", authserver.storage.sql.models.UTCDateTime(), nullable=True),
        sa.Column("next_run_at", authserver.storage.sql.models.UTCDateTime(), nullable=False),
        sa.Column("last_run_at", authserver.storage.sql.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_leases")),
    )
    op.create_index(
        "ix_security_events_personal_data", "security_events", ["occurred_at"], unique=False,
        postgresql_where=sa.text(PERSONAL_DATA), sqlite_where=sa.text(PERSONAL_DATA),
    )


def downgrade() -> None:
    op.drop_index("ix_security_events_personal_data", table_name="security_events")
    op.drop_table("job_leases")
