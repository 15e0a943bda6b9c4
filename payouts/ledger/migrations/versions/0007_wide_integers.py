"""wide integers: the chain's u64 values and sums of them, exactly

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

from payouts.ledger.types import WideInteger

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# a receipt's measured uptime, cloud units and reward are u64 on the chain (past SQLite's and
# PostgreSQL's signed 64-bit INTEGER); a run's totals are sums of them
_RECEIPT_COLUMNS = ("measured_uptime_s", "reward_musd", "reward_tft_units", "cu_pm", "su_pm", "nu_pm")
_RUN_COLUMNS = ("total_musd", "total_tft_units", "payable_tft_units")


def _using(name: str) -> str | None:
    # PostgreSQL converts BIGINT to NUMERIC (and back) with an explicit cast; SQLite copies
    # the table and its TEXT affinity keeps the digits
    return f"{name}::numeric(39,0)" if op.get_bind().dialect.name == "postgresql" else None


def upgrade() -> None:
    for table, columns in (("receipts", _RECEIPT_COLUMNS), ("runs", _RUN_COLUMNS)):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in columns:
                batch_op.alter_column(
                    name,
                    existing_type=sa.BigInteger(),
                    type_=WideInteger(),
                    existing_nullable=False,
                    postgresql_using=_using(name),
                )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for table, columns in (("runs", _RUN_COLUMNS), ("receipts", _RECEIPT_COLUMNS)):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name in columns:
                batch_op.alter_column(
                    name,
                    existing_type=WideInteger(),
                    type_=sa.BigInteger(),
                    existing_nullable=False,
                    postgresql_using=f"{name}::bigint" if postgresql else None,
                )
