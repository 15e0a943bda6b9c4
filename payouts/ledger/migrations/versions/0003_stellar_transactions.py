"""stellar transactions

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from payouts.ledger.types import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stellar_transactions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("source_account", sa.String(length=56), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("min_time", sa.BigInteger(), nullable=False),
        sa.Column("max_time", sa.BigInteger(), nullable=False),
        sa.Column("fee_stroops", sa.BigInteger(), nullable=False),
        sa.Column("memo_hash", sa.String(length=64), nullable=False),
        sa.Column("envelope_xdr", sa.Text(), nullable=False),
        sa.Column("tx_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("result_json", sa.Text(), server_default="{}", nullable=False),
        sa.Column("ledger", sa.Integer(), nullable=True),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_stellar_transactions_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stellar_transactions")),
        sa.UniqueConstraint("tx_hash", name=op.f("uq_stellar_transactions_tx_hash")),
    )
    with op.batch_alter_table("stellar_transactions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stellar_transactions_run_id"), ["run_id"], unique=False)
        batch_op.create_index(
            "ix_stellar_transactions_source_account_sequence", ["source_account", "sequence"], unique=False
        )
        batch_op.create_index("ix_stellar_transactions_status_run_id", ["status", "run_id"], unique=False)

    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("transaction_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_payments_transaction_id"), ["transaction_id"], unique=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_payments_transaction_id_stellar_transactions"),
            "stellar_transactions",
            ["transaction_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_payments_transaction_id_stellar_transactions"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_payments_transaction_id"))
        batch_op.drop_column("transaction_id")

    with op.batch_alter_table("stellar_transactions", schema=None) as batch_op:
        batch_op.drop_index("ix_stellar_transactions_status_run_id")
        batch_op.drop_index("ix_stellar_transactions_source_account_sequence")
        batch_op.drop_index(batch_op.f("ix_stellar_transactions_run_id"))

    op.drop_table("stellar_transactions")
