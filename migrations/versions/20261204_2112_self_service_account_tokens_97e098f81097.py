"""self-service account tokens (password-reset and e-mail verification links, digests only)

Revision ID: 97e098f81097
Revises: 304e5e4d9094
Create Date: 2026-12-04 21:12:02.575783
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import authserver.storage.sql.models


revision: str = '97e098f81097'
down_revision: str | None = '304e5e4d9094'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('account_tokens',
    sa.Column('token_digest', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=16), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('created_at', authserver.storage.sql.models.UTCDateTime(), nullable=False),
    sa.Column('expires_at', authserver.storage.sql.models.UTCDateTime(), nullable=False),
    sa.Column('used_at', authserver.storage.sql.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.account_id'], name=op.f('fk_account_tokens_account_id_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_digest', name=op.f('pk_account_tokens'))
    )
    with op.batch_alter_table('account_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_tokens_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_account_tokens_expires_at'), ['expires_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('account_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_tokens_expires_at'))
        batch_op.drop_index(batch_op.f('ix_account_tokens_account_id'))

    op.drop_table('account_tokens')
