"""online payments: the biller's payment id, reference, receipt and token on the payment row

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02

(0010 is the PIN tries migration: the lead re-chains this one after it when both land.)
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("biller_payment_id", "online: the payment's idempotency key at the biller"),
    ("biller_ref", "online: the biller's reference of the payment"),
    ("receipt", "online: the biller's fiscal/VAT receipt id (DE 48 VR)"),
    ("token", "online: the prepaid token the biller vended (DE 48 TK)"),
)


def upgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        for name, comment in _COLUMNS:
            batch_op.add_column(
                sa.Column(name, sa.String(length=64), nullable=True, comment=comment)
            )
    op.create_index("ix_payments_biller_payment_id", "payments", ["biller_payment_id"])


def downgrade() -> None:
    op.drop_index("ix_payments_biller_payment_id", table_name="payments")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        for name, _ in reversed(_COLUMNS):
            batch_op.drop_column(name)
