"""DPoP (RFC 9449): the key a public client's refresh-token family is bound to (grants.dpop_jkt, §5) and
the key an authorization code is bound to by the dpop_jkt authorization parameter (§10)

Revision ID: b4d1e8a2c6f0
Revises: b5d2e8f4a113
Create Date: 2026-12-07 15:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b4d1e8a2c6f0"
down_revision: str | None = "b5d2e8f4a113"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("grants") as batch:
        batch.add_column(sa.Column("dpop_jkt", sa.String(length=64), nullable=True))
    with op.batch_alter_table("authorization_codes") as batch:
        batch.add_column(sa.Column("dpop_jkt", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("authorization_codes") as batch:
        batch.drop_column("dpop_jkt")
    with op.batch_alter_table("grants") as batch:
        batch.drop_column("dpop_jkt")
