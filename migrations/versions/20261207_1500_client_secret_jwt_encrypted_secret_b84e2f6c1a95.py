"""client_secret_jwt: an encrypted copy of the client secret (the HMAC key must be read back)

Revision ID: b84e2f6c1a95
Revises: b4d1e8a2c6f0
Create Date: 2026-12-07 15:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b84e2f6c1a95"
down_revision: str | None = "b4d1e8a2c6f0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("client_secrets") as batch_op:
        batch_op.add_column(sa.Column("secret_encrypted", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("client_secrets") as batch_op:
        batch_op.drop_column("secret_encrypted")
