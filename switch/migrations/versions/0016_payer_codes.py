"""payer codes: one code for a payer's accounts at several billers; split payments

``payer_codes`` holds the codes (DE 48 PC), ``payer_accounts`` the (biller,
account) pairs each stands for, in the order they were added. A payment by payer
code is split over those accounts: one payment row for the whole request (the
head: what the acquirer paid, with its journal rows) and one row per biller
account paid (the parts: what each biller is owed, with the allocations and, for
an online biller, its payment id there). ``payments.split_of`` names the head on
the head and on each of its parts; it is NULL on every other payment.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payer_codes",
        sa.Column("code", sa.String(length=32), nullable=False, comment="DE 48 PC"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "payer_accounts",
        sa.Column("payer_code", sa.String(length=32), nullable=False),
        sa.Column("biller_code", sa.String(length=8), nullable=False),
        sa.Column("account", sa.String(length=32), nullable=False),
        sa.Column(
            "position",
            sa.Integer(),
            nullable=False,
            comment="order added; an online part's payment id at its biller ends with it",
        ),
        sa.ForeignKeyConstraint(["payer_code"], ["payer_codes.code"]),
        sa.ForeignKeyConstraint(["biller_code"], ["billers.code"]),
        sa.PrimaryKeyConstraint("payer_code", "biller_code", "account"),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "split_of",
                sa.Integer(),
                nullable=True,
                comment="payer-code split: the head payment's id (on the head and its parts)",
            )
        )
        batch_op.create_index("ix_payments_split_of", ["split_of"])


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_split_of")
        batch_op.drop_column("split_of")
    op.drop_table("payer_accounts")
    op.drop_table("payer_codes")
