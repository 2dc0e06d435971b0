"""a day's reversals by business day (payment files name late reversals)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Partial: only reversal rows are indexed, so payments' journal rows cost nothing.
    where = sa.text("kind = 'reversal'")
    op.create_index(
        "ix_journal_reversal_day",
        "journal",
        ["business_day"],
        postgresql_where=where,
        sqlite_where=where,
    )


def downgrade() -> None:
    op.drop_index("ix_journal_reversal_day", table_name="journal")
