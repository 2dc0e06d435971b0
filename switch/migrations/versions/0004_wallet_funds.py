"""a wallet's funds kept with its card (no sum over every entry per payment)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "funds",
                sa.BigInteger(),
                nullable=False,
                server_default="0",
                comment="what the wallet holds: always minus the sum of its entries",
            )
        )
    op.execute(
        "UPDATE cards SET funds = COALESCE((SELECT -SUM(e.amount) FROM entries e"
        " WHERE e.account_code = cards.wallet_account), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("cards", schema=None) as batch_op:
        batch_op.drop_column("funds")
