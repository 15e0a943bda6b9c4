"""fee bumps, run leases, the pause switch

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

from payouts.ledger.types import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stellar_transactions", schema=None) as batch_op:
        # the hash of the fee bump that wraps the transaction, when its fee had to be raised
        batch_op.add_column(sa.Column("fee_bump_hash", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_stellar_transactions_fee_bump_hash"), ["fee_bump_hash"], unique=True)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        # one worker at a time drives a run's payments; a lease that is not renewed expires
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("lease_expires_at", UtcDateTime(), nullable=True))
    op.create_table(
        "controls",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("value", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_controls")),
    )


def downgrade() -> None:
    op.drop_table("controls")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("lease_expires_at")
        batch_op.drop_column("lease_owner")
    with op.batch_alter_table("stellar_transactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stellar_transactions_fee_bump_hash"))
        batch_op.drop_column("fee_bump_hash")
