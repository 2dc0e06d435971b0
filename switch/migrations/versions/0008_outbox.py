"""the outbox: advices, reversals and doubts to deliver to online billers (store and forward)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("biller_code", sa.String(length=8), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False, comment="pay, reverse or settle"),
        sa.Column(
            "payment_id",
            sa.String(length=64),
            nullable=False,
            comment="the biller-side idempotency key",
        ),
        sa.Column(
            "body", sa.Text(), nullable=False, comment="JSON: what pay rebuilds its request from"
        ),
        sa.Column("state", sa.String(length=8), nullable=False, comment="pending, done or parked"),
        sa.Column(
            "attempts",
            sa.Integer(),
            nullable=False,
            comment="deliveries started; the claim's token",
        ),
        sa.Column(
            "next_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="due (or lease end)",
        ),
        sa.Column(
            "claimed_until",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="a delivery's lease, while claimed",
        ),
        sa.Column(
            "last_error",
            sa.String(length=200),
            nullable=True,
            comment="why the last attempt failed or the row parked",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("action", "payment_id", name="uq_outbox_action_payment"),
    )
    op.create_index("ix_outbox_due", "outbox", ["state", "next_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.drop_table("outbox")
