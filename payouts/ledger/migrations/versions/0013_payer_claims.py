"""the payer's claims on chain; the ledger's database fingerprint

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from payouts.ledger.types import UtcDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payer_claims",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("data_name", sa.String(length=64), nullable=False),
        sa.Column("value_b64", sa.String(length=100), nullable=False),
        sa.Column("transaction_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ledger", sa.BigInteger(), nullable=True),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_payer_claims_run_id_runs")),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["stellar_transactions.id"],
            name=op.f("fk_payer_claims_transaction_id_stellar_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payer_claims")),
    )
    with op.batch_alter_table("payer_claims", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payer_claims_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payer_claims_value_b64"), ["value_b64"], unique=False)
    with op.batch_alter_table("ledger_identity", schema=None) as batch_op:
        # None until the first payer records it (a ledger made before this revision, or new)
        batch_op.add_column(sa.Column("database_fingerprint", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ledger_identity", schema=None) as batch_op:
        batch_op.drop_column("database_fingerprint")
    with op.batch_alter_table("payer_claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payer_claims_value_b64"))
        batch_op.drop_index(batch_op.f("ix_payer_claims_run_id"))
    op.drop_table("payer_claims")
