"""claimable balances: the run's signed policy, each payment's delivery, balance id and claim deadline

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from payouts.ledger.types import UtcDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.add_column(sa.Column("claimable_policy_json", sa.Text(), server_default="", nullable=False))
    with op.batch_alter_table("payments") as batch_op:
        batch_op.add_column(sa.Column("delivery", sa.String(length=20), server_default="payment", nullable=False))
        batch_op.add_column(sa.Column("claimable_balance_id", sa.String(length=72), nullable=True))
        batch_op.add_column(sa.Column("claimable_until", UtcDateTime(), nullable=True))
        batch_op.create_index("ix_payments_claimable_balance_id", ["claimable_balance_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("payments") as batch_op:
        batch_op.drop_index("ix_payments_claimable_balance_id")
        batch_op.drop_column("claimable_until")
        batch_op.drop_column("claimable_balance_id")
        batch_op.drop_column("delivery")
    with op.batch_alter_table("runs") as batch_op:
        batch_op.drop_column("claimable_policy_json")
