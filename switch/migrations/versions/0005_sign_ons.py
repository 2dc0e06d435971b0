"""sign-on state in the database, shared by every node and worker process

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sign_ons",
        sa.Column("acquirer_id", sa.String(length=11), nullable=False),
        sa.Column(
            "terminal_id",
            sa.String(length=8),
            nullable=False,
            comment="DE 41; '' for a host link",
        ),
        sa.Column("signed_on_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("acquirer_id", "terminal_id"),
    )


def downgrade() -> None:
    op.drop_table("sign_ons")
