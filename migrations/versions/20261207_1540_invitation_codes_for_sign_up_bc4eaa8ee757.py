"""invitation codes for sign-up (self-service issue 14: stored as SHA-256 digests, with a use count and expiry)

Revision ID: bc4eaa8ee757
Revises: 3f6a9c1d2e7b
Create Date: 2026-12-07 14:31:43.807261
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import authserver.storage.sql.models


revision: str = 'bc4eaa8ee757'
down_revision: str | None = '3f6a9c1d2e7b'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('invitations',
    sa.Column('invitation_id', sa.String(length=32), nullable=False),
    sa.Column('code_digest', sa.String(length=64), nullable=False),
    sa.Column('max_uses', sa.Integer(), nullable=False),
    sa.Column('uses', sa.Integer(), server_default='0', nullable=False),
    sa.Column('note', sa.String(length=200), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', authserver.storage.sql.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', authserver.storage.sql.models.UTCDateTime(), nullable=False),
    sa.Column('revoked_at', authserver.storage.sql.models.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('invitation_id', name=op.f('pk_invitations')),
    sa.UniqueConstraint('code_digest', name=op.f('uq_invitations_code_digest'))
    )
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_invitations_expires_at'), ['expires_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_invitations_expires_at'))

    op.drop_table('invitations')
