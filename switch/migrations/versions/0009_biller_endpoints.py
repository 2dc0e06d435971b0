"""online billers' settings: API base URL, sealed HMAC secret, timeout, calls in flight

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("billers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "url",
                sa.String(length=200),
                nullable=True,
                comment="online: base URL of the biller's API",
            )
        )
        batch_op.add_column(
            sa.Column(
                "secret",
                sa.String(length=200),
                nullable=True,
                comment="online: HMAC secret, sealed (AES-GCM under a key from hash.key)",
            )
        )
        batch_op.add_column(
            sa.Column("timeout_ms", sa.Integer(), nullable=False, server_default="3000")
        )
        batch_op.add_column(
            sa.Column("max_in_flight", sa.Integer(), nullable=False, server_default="64")
        )


def downgrade() -> None:
    with op.batch_alter_table("billers", schema=None) as batch_op:
        for column in ("max_in_flight", "timeout_ms", "secret", "url"):
            batch_op.drop_column(column)
