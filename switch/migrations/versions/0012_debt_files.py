"""held billers' debt files: the biller's Ed25519 key, debts' due dates, files applied

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("billers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "public_key",
                sa.String(length=64),
                nullable=True,
                comment="held: Ed25519 public key of its debt files, hex",
            )
        )
    with op.batch_alter_table("debts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "due",
                sa.Date(),
                nullable=True,
                comment="due date, as the biller's debt file gives it",
            )
        )
    op.create_table(
        "debt_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("biller_code", sa.String(length=8), nullable=False),
        sa.Column(
            "digest",
            sa.String(length=64),
            nullable=False,
            comment="SHA-256 of the file's bytes, hex",
        ),
        sa.Column("mode", sa.String(length=5), nullable=False, comment="full or delta"),
        sa.Column(
            "generated", sa.DateTime(timezone=True), nullable=False, comment="the file's own time"
        ),
        sa.Column("debts", sa.BigInteger(), nullable=False, comment="debt lines in the file"),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("digest", name="uq_debt_files_digest"),
    )
    op.create_index("ix_debt_files_biller", "debt_files", ["biller_code", "generated"])


def downgrade() -> None:
    op.drop_index("ix_debt_files_biller", table_name="debt_files")
    op.drop_table("debt_files")
    with op.batch_alter_table("debts", schema=None) as batch_op:
        batch_op.drop_column("due")
    with op.batch_alter_table("billers", schema=None) as batch_op:
        batch_op.drop_column("public_key")
