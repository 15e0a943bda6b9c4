"""every hash of our transactions; ledger bounds of transactions

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from payouts.ledger.types import UtcDateTime

revision = "0009"
# follows 0007 where that revision exists (it widens integer columns on another line of work)
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stellar_transactions", schema=None) as batch_op:
        # the latest ledger when built, and the ledger bound: "not found as of max_ledger, with
        # history back to built_ledger" is the proof that a transaction can never land
        batch_op.add_column(sa.Column("built_ledger", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("max_ledger", sa.BigInteger(), nullable=True))
    op.create_table(
        "transaction_hashes",
        sa.Column("tx_hash", sa.String(length=64), nullable=False),
        sa.Column("transaction_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["stellar_transactions.id"],
            name=op.f("fk_transaction_hashes_transaction_id_stellar_transactions"),
        ),
        sa.PrimaryKeyConstraint("tx_hash", name=op.f("pk_transaction_hashes")),
    )
    with op.batch_alter_table("transaction_hashes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transaction_hashes_transaction_id"), ["transaction_id"], unique=False)
    # the hashes already known: each transaction's own, and the fee bump recorded on it
    op.execute(
        "INSERT INTO transaction_hashes (tx_hash, transaction_id, kind, created_at) "
        "SELECT tx_hash, id, 'inner', created_at FROM stellar_transactions"
    )
    op.execute(
        "INSERT INTO transaction_hashes (tx_hash, transaction_id, kind, created_at) "
        "SELECT fee_bump_hash, id, 'fee_bump', updated_at FROM stellar_transactions WHERE fee_bump_hash IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("transaction_hashes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transaction_hashes_transaction_id"))
    op.drop_table("transaction_hashes")
    with op.batch_alter_table("stellar_transactions", schema=None) as batch_op:
        batch_op.drop_column("max_ledger")
        batch_op.drop_column("built_ledger")
