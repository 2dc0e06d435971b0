"""cards.pin_pending: PIN tries reserved and not yet decided (issue 9 item 4)

A try is reserved on the card row before the HSM verifies it, so tries in flight on
every node count against the limit; kept apart from pin_tries so that a right PIN
resets the wrong tries without wiping a try still being verified. pin_pending_until:
reservations a crashed node left behind count no more after it (unix seconds).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cards") as batch:
        batch.add_column(
            sa.Column(
                "pin_pending",
                sa.Integer(),
                nullable=False,
                server_default="0",
                comment="PIN tries reserved, their verification not yet decided",
            )
        )
        batch.add_column(
            sa.Column(
                "pin_pending_until",
                sa.BigInteger(),
                nullable=False,
                server_default="0",
                comment="unix time after which the reserved tries are taken as lost (a crash)",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("cards") as batch:
        batch.drop_column("pin_pending_until")
        batch.drop_column("pin_pending")
