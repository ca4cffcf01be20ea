"""abuse protection throttles and flags

Revision ID: 304e5e4d9094
Revises: 56c22e58a502
Create Date: 2026-11-23 13:56:18.114561
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import authserver.storage.sql.models


revision: str = '304e5e4d9094'
down_revision: str | None = "56c22e58a502"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('login_throttles',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('window_started_at', authserver.storage.sql.models.UTCDateTime(), nullable=False),
    sa.Column('locked_until', authserver.storage.sql.models.UTCDateTime(), nullable=True),
    sa.Column('lock_count', sa.Integer(), nullable=False),
    sa.Column('updated_at', authserver.storage.sql.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_login_throttles'))
    )
    with op.batch_alter_table('login_throttles', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_throttles_updated_at'), ['updated_at'], unique=False)

    op.create_table('server_flags',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.JSON(), nullable=False),
    sa.Column('updated_at', authserver.storage.sql.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_server_flags'))
    )


def downgrade() -> None:
    op.drop_table('server_flags')
    with op.batch_alter_table('login_throttles', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_login_throttles_updated_at'))

    op.drop_table('login_throttles')
