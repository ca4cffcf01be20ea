"""MFA: per-account second-factor failure window and lock verdict (durable, SPEC R-04).

Revision ID: 56c22e58a502
Revises: af083dcee6b5
Create Date: 2026-11-23 13:57:21.016473
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import authserver.storage.sql.models

revision: str = '56c22e58a502'
down_revision: str | None = "af083dcee6b5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mfa_failed_attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('mfa_failures_since', authserver.storage.sql.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('mfa_locked_until', authserver.storage.sql.models.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_column('mfa_locked_until')
        batch_op.drop_column('mfa_failures_since')
        batch_op.drop_column('mfa_failed_attempts')
