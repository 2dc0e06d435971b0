"""indexes of request rows and transaction identities by time, for the retention purge

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_requests_created_at", "requests", ["created_at"], unique=False)
    op.create_index("ix_transactions_created_at", "transactions", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_transactions_created_at", table_name="transactions")
    op.drop_index("ix_requests_created_at", table_name="requests")
