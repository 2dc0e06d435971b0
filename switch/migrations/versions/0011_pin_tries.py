"""pin_tries: a card's PIN tries in a table of their own (issue 9 item 4)

A try is reserved before the HSM verifies it, so tries in flight on every node count
against the limit: ``pending`` apart from ``tries`` (the wrong ones) so that a right
PIN resets the wrong tries without wiping a try still being verified;
``pending_until``: reservations a crashed node left behind count no more after it
(unix seconds). Not on the card row: the ledger locks that row to pay from the
wallet, and reservations would wait for its batches (and they for them). The wrong
tries counted so far move here from ``cards.pin_tries``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pin_tries",
        sa.Column("pan_hash", sa.String(length=64), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False, server_default="0", comment="wrong PINs"),
        sa.Column(
            "pending",
            sa.Integer(),
            nullable=False,
            server_default="0",
            comment="PIN tries reserved, their verification not yet decided",
        ),
        sa.Column(
            "pending_until",
            sa.BigInteger(),
            nullable=False,
            server_default="0",
            comment="unix time after which the reserved tries are taken as lost (a crash)",
        ),
        sa.ForeignKeyConstraint(["pan_hash"], ["cards.pan_hash"]),
        sa.PrimaryKeyConstraint("pan_hash"),
    )
    op.execute("INSERT INTO pin_tries (pan_hash, tries) SELECT pan_hash, pin_tries FROM cards")
    with op.batch_alter_table("cards") as batch:
        batch.drop_column("pin_tries")


def downgrade() -> None:
    with op.batch_alter_table("cards") as batch:
        batch.add_column(sa.Column("pin_tries", sa.Integer(), nullable=False, server_default="0"))
    op.execute(
        "UPDATE cards SET pin_tries = COALESCE("
        "(SELECT t.tries FROM pin_tries t WHERE t.pan_hash = cards.pan_hash), 0)"
    )
    op.drop_table("pin_tries")
    with op.batch_alter_table("cards") as batch:
        batch.alter_column("pin_tries", server_default=None)  # as 0002 made it
