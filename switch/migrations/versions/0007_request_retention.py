"""an index of request rows by time, for the retention purge

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-01
"""

from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_requests_created_at", "requests", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_requests_created_at", table_name="requests")
