"""client metadata for sender-constrained and high-assurance clients (issue 13): jwks, jwks_uri,
token_endpoint_auth_signing_alg, tls_client_auth_*, certificate- and DPoP-bound tokens, PAR required

Revision ID: 3f6a9c1d2e7b
Revises: 7c1e0b2d9a41
Create Date: 2026-12-07 14:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3f6a9c1d2e7b"
down_revision: str | None = "7c1e0b2d9a41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TEXT_COLUMNS = (
    ("jwks_uri", 2000),
    ("token_endpoint_auth_signing_alg", 16),
    ("tls_client_auth_subject_dn", 1000),
    ("tls_client_auth_san_dns", 1000),
    ("tls_client_auth_san_uri", 1000),
    ("tls_client_auth_san_ip", 1000),
    ("tls_client_auth_san_email", 1000),
)
FLAGS = ("tls_client_certificate_bound_access_tokens", "dpop_bound_access_tokens", "require_pushed_authorization_requests")


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch_op:
        batch_op.add_column(sa.Column("jwks", sa.JSON(), nullable=True))
        for name, length in TEXT_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.String(length=length), nullable=True))
        for name in FLAGS:
            batch_op.add_column(sa.Column(name, sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("clients") as batch_op:
        for name in reversed(FLAGS):
            batch_op.drop_column(name)
        for name, _ in reversed(TEXT_COLUMNS):
            batch_op.drop_column(name)
        batch_op.drop_column("jwks")
