"""payments and approvals

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from payouts.ledger.types import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("approver_public_key", sa.String(length=56), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("manifest_json", sa.Text(), nullable=False),
        sa.Column("signature_b64", sa.String(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_approvals_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
        sa.UniqueConstraint(
            "run_id",
            "approver_public_key",
            "manifest_sha256",
            name=op.f("uq_approvals_run_id_approver_public_key_manifest_sha256"),
        ),
    )
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_approvals_run_id"), ["run_id"], unique=False)

    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("receipt_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("idempotency_key", sa.String(length=160), nullable=False),
        sa.Column("receipt_hash", sa.String(length=64), nullable=False),
        sa.Column("receipt_bytes", sa.LargeBinary(), nullable=True),
        sa.Column("retry_of_payment_id", sa.Integer(), nullable=True),
        sa.Column("farm_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=True),
        sa.Column("destination", sa.String(), nullable=False),
        sa.Column("amount_tft_units", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("hold_reason", sa.String(), nullable=False),
        sa.Column("in_manifest", sa.Boolean(), nullable=False),
        sa.Column("payout_basis", sa.String(length=20), nullable=False),
        sa.Column("tx_hash", sa.String(length=64), nullable=True),
        sa.Column("ledger", sa.Integer(), nullable=True),
        sa.Column("paid_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["receipt_id"], ["receipts.id"], name=op.f("fk_payments_receipt_id_receipts")),
        sa.ForeignKeyConstraint(
            ["retry_of_payment_id"], ["payments.id"], name=op.f("fk_payments_retry_of_payment_id_payments")
        ),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_payments_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_payments_idempotency_key")),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payments_farm_id"), ["farm_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payments_receipt_hash"), ["receipt_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_payments_receipt_id"), ["receipt_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payments_run_id"), ["run_id"], unique=False)
        batch_op.create_index("ix_payments_status_run_id", ["status", "run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_payments_tx_hash"), ["tx_hash"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_tx_hash"))
        batch_op.drop_index("ix_payments_status_run_id")
        batch_op.drop_index(batch_op.f("ix_payments_run_id"))
        batch_op.drop_index(batch_op.f("ix_payments_receipt_id"))
        batch_op.drop_index(batch_op.f("ix_payments_receipt_hash"))
        batch_op.drop_index(batch_op.f("ix_payments_farm_id"))

    op.drop_table("payments")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_approvals_run_id"))

    op.drop_table("approvals")
