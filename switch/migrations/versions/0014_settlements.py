"""settlement of closed business days: the settlements table, journal rows by day

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settlements",
        sa.Column("business_day", sa.Date(), nullable=False),
        sa.Column(
            "state",
            sa.String(length=8),
            nullable=False,
            comment="claimed (nothing moved yet), posted (transfer made, tasks due) or done",
        ),
        sa.Column(
            "claim",
            sa.String(length=32),
            nullable=True,
            comment="token of the run that holds the day, while held",
        ),
        sa.Column(
            "claimed_until",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="end of that run's lease",
        ),
        sa.Column(
            "node",
            sa.String(length=100),
            nullable=True,
            comment="who holds (or last held) the day: host:pid",
        ),
        sa.Column(
            "report",
            sa.Text(),
            nullable=True,
            comment="JSON: the report's lines, fixed at the transfer",
        ),
        sa.Column(
            "last_error",
            sa.String(length=200),
            nullable=True,
            comment="why the last run did not finish",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("business_day"),
    )
    op.create_index("ix_journal_day", "journal", ["business_day"])


def downgrade() -> None:
    op.drop_index("ix_journal_day", table_name="journal")
    op.drop_table("settlements")
