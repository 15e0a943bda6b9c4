"""off-cycle runs: a run kind, and one live monthly run per period

Outstanding retries whose destinations can receive again may be paid between months by a run of
kind `off_cycle`; it shares the period of the newest monthly run, so the one-live-run-per-period
index now counts monthly runs only, and at most one off-cycle run is open at a time. Every
existing run is a monthly one.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_LIVE_RUN = "status NOT IN ('replaced', 'rejected')"
_LIVE_MONTHLY_RUN = _LIVE_RUN + " AND kind = 'monthly'"
_OPEN_OFF_CYCLE_RUN = "kind = 'off_cycle' AND status NOT IN ('reconciled', 'exported', 'replaced', 'rejected')"


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=12), server_default="monthly", nullable=False))
        batch_op.drop_index("uq_runs_live_period", sqlite_where=sa.text(_LIVE_RUN), postgresql_where=sa.text(_LIVE_RUN))
        batch_op.create_index(
            "uq_runs_live_period",
            ["period_offset"],
            unique=True,
            sqlite_where=sa.text(_LIVE_MONTHLY_RUN),
            postgresql_where=sa.text(_LIVE_MONTHLY_RUN),
        )
        batch_op.create_index(
            "uq_runs_open_off_cycle",
            ["kind"],
            unique=True,
            sqlite_where=sa.text(_OPEN_OFF_CYCLE_RUN),
            postgresql_where=sa.text(_OPEN_OFF_CYCLE_RUN),
        )


def downgrade() -> None:
    # fails while an off-cycle run is live beside its period's run: the old index cannot hold both
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_runs_open_off_cycle",
            sqlite_where=sa.text(_OPEN_OFF_CYCLE_RUN),
            postgresql_where=sa.text(_OPEN_OFF_CYCLE_RUN),
        )
        batch_op.drop_index(
            "uq_runs_live_period", sqlite_where=sa.text(_LIVE_MONTHLY_RUN), postgresql_where=sa.text(_LIVE_MONTHLY_RUN)
        )
        batch_op.create_index(
            "uq_runs_live_period",
            ["period_offset"],
            unique=True,
            sqlite_where=sa.text(_LIVE_RUN),
            postgresql_where=sa.text(_LIVE_RUN),
        )
        batch_op.drop_column("kind")
