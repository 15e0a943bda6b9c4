"""revenue bridge

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

from payouts.ledger.types import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # the node's connection price (mUSD per TFT) the receipt was converted at; null for rows
    # written before this revision (the export then reads it from the receipt bytes)
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("connection_price_musd", sa.BigInteger(), nullable=True))

    # a correction points at the payment it corrects; history is never edited
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("correction_of_payment_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_payments_correction_of_payment_id_payments"),
            "payments",
            ["correction_of_payment_id"],
            ["id"],
        )
        # the export asks "is this payment corrected?" for every row
        batch_op.create_index(
            batch_op.f("ix_payments_correction_of_payment_id"), ["correction_of_payment_id"], unique=False
        )

    op.create_table(
        "node_transitions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("v3_opted_out_at", UtcDateTime(), nullable=True),
        sa.Column("v4_account", sa.String(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_transitions")),
        sa.UniqueConstraint("node_id", name=op.f("uq_node_transitions_node_id")),
    )
    op.create_table(
        "farm_signons",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("farm_id", sa.Integer(), nullable=False),
        sa.Column("contact_confirmed_at", UtcDateTime(), nullable=True),
        sa.Column("sla_accepted_at", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_farm_signons")),
        sa.UniqueConstraint("farm_id", name=op.f("uq_farm_signons_farm_id")),
    )


def downgrade() -> None:
    op.drop_table("farm_signons")
    op.drop_table("node_transitions")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payments_correction_of_payment_id"))
        batch_op.drop_constraint(batch_op.f("fk_payments_correction_of_payment_id_payments"), type_="foreignkey")
        batch_op.drop_column("correction_of_payment_id")
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.drop_column("connection_price_musd")
