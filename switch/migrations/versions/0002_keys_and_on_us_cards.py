"""keys and on-us cards

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column(
            "owner",
            sa.String(length=24),
            nullable=False,
            comment="acquirer:terminal, acquirer: or issuer",
        ),
        sa.Column(
            "key_type",
            sa.String(length=4),
            nullable=False,
            comment="TMK TPK TAK ZMK ZPK ZAK PVK CVK",
        ),
        sa.Column(
            "value", sa.String(length=64), nullable=False, comment="under the LMK, scheme-prefixed"
        ),
        sa.Column("kcv", sa.String(length=6), nullable=False),
        sa.Column(
            "state", sa.String(length=10), nullable=False, comment="active, retiring, retired"
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "retire_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="end of a retiring key's grace",
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("keys", schema=None) as batch_op:
        batch_op.create_index("ix_keys_owner", ["owner", "key_type", "state"], unique=False)

    op.create_table(
        "cards",
        sa.Column(
            "pan_hash", sa.String(length=64), nullable=False, comment="keyed hash of the PAN"
        ),
        sa.Column("masked_pan", sa.String(length=19), nullable=False),
        sa.Column("pvki", sa.String(length=1), nullable=False),
        sa.Column("pvv", sa.String(length=4), nullable=False),
        sa.Column("wallet_account", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("pin_tries", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(
            ["wallet_account"],
            ["accounts.code"],
        ),
        sa.PrimaryKeyConstraint("pan_hash"),
    )


def downgrade() -> None:
    op.drop_table("cards")
    with op.batch_alter_table("keys", schema=None) as batch_op:
        batch_op.drop_index("ix_keys_owner")

    op.drop_table("keys")
