"""one row per financial transaction identity: its payment, or a reversal that came first

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

Existing approved payments get their row (the oldest payment of an identity, should an
earlier version have recorded two). Reversals recorded before this migration for an
original never seen leave no tombstone: their DE 90 was not stored.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transactions",
        sa.Column("stan", sa.String(length=6), nullable=False),
        sa.Column("transmitted", sa.String(length=10), nullable=False),
        sa.Column("acquirer_id", sa.String(length=11), nullable=False),
        sa.Column(
            "terminal_id", sa.String(length=8), nullable=False, comment="DE 41; '' for a host link"
        ),
        sa.Column(
            "state",
            sa.String(length=16),
            nullable=False,
            comment="paid, or reversed_first (tombstone)",
        ),
        sa.Column(
            "payment_id", sa.Integer(), nullable=True, comment="the payment of a paid transaction"
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="for the purge by age",
        ),
        sa.PrimaryKeyConstraint("stan", "transmitted", "acquirer_id", "terminal_id"),
    )
    op.execute(
        "INSERT INTO transactions"
        " (stan, transmitted, acquirer_id, terminal_id, state, payment_id, created_at)"
        " SELECT stan, transmitted, acquirer_id, terminal_id, 'paid', MIN(payment_id),"
        " MIN(created_at) FROM requests"
        " WHERE mti IN ('0200', '0220') AND response_code = '00' AND payment_id IS NOT NULL"
        " GROUP BY stan, transmitted, acquirer_id, terminal_id"
    )


def downgrade() -> None:
    op.drop_table("transactions")
