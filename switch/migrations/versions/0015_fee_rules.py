"""fee rules by biller, channel and acquirer; who paid a payment's fee

Each biller's ``fee_fixed`` that was set becomes a rule of that biller (fixed, paid by
the payer: what it meant), so an upgraded switch charges what it charged before.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    rules = op.create_table(
        "fee_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("biller_code", sa.String(length=8), nullable=True, comment="NULL: any biller"),
        sa.Column(
            "channel",
            sa.String(length=8),
            nullable=True,
            comment="ATM, POS or HOST; NULL: any channel",
        ),
        sa.Column(
            "acquirer_id", sa.String(length=11), nullable=True, comment="DE 32; NULL: any acquirer"
        ),
        sa.Column("fixed", sa.BigInteger(), nullable=False, comment="minor units"),
        sa.Column(
            "percent_bp",
            sa.Integer(),
            nullable=False,
            comment="basis points of the amount (100 = 1 %), rounded half up",
        ),
        sa.Column("min_fee", sa.BigInteger(), nullable=False, comment="minor units"),
        sa.Column(
            "max_fee", sa.BigInteger(), nullable=True, comment="minor units; NULL: no maximum"
        ),
        sa.Column(
            "payer",
            sa.String(length=6),
            nullable=False,
            comment="payer (on top) or biller (deducted)",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "fee_payer",
                sa.String(length=6),
                nullable=False,
                server_default="payer",
                comment="who pays the fee: payer (on top, DE 28) or biller (from its payable)",
            )
        )
    billers = sa.table("billers", sa.column("code", sa.String), sa.column("fee_fixed"))
    conn = op.get_bind()
    found = conn.execute(
        sa.select(billers.c.code, billers.c.fee_fixed).where(billers.c.fee_fixed > 0)
    ).all()
    if found:
        now = datetime.now(UTC)
        op.bulk_insert(
            rules,
            [
                {
                    "biller_code": code,
                    "channel": None,
                    "acquirer_id": None,
                    "fixed": fee,
                    "percent_bp": 0,
                    "min_fee": 0,
                    "max_fee": None,
                    "payer": "payer",
                    "created_at": now,
                }
                for code, fee in found
            ],
        )


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_column("fee_payer")
    op.drop_table("fee_rules")
