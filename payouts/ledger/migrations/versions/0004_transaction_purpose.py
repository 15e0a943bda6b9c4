"""transaction purpose

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stellar_transactions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("purpose", sa.String(length=10), server_default="payment", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("stellar_transactions", schema=None) as batch_op:
        batch_op.drop_column("purpose")
