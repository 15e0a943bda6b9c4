"""initial ledger

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from payouts.ledger.types import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The event history is append-only: the database itself refuses to edit or delete a row.
_SQLITE_GUARDS = [
    """CREATE TRIGGER event_history_no_update BEFORE UPDATE ON event_history
       BEGIN SELECT RAISE(ABORT, 'event_history is append-only'); END""",
    """CREATE TRIGGER event_history_no_delete BEFORE DELETE ON event_history
       BEGIN SELECT RAISE(ABORT, 'event_history is append-only'); END""",
]
_POSTGRES_GUARDS = [
    """CREATE FUNCTION event_history_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN RAISE EXCEPTION 'event_history is append-only'; END $$""",
    """CREATE TRIGGER event_history_no_edit BEFORE UPDATE OR DELETE ON event_history
       FOR EACH ROW EXECUTE FUNCTION event_history_append_only()""",
]


def _guards(dialect: str) -> list[str]:
    return _POSTGRES_GUARDS if dialect == "postgresql" else _SQLITE_GUARDS


def upgrade() -> None:
    op.create_table(
        "event_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurred_at", UtcDateTime(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("entity", sa.String(length=32), nullable=False),
        sa.Column("entity_id", sa.Integer(), nullable=True),
        sa.Column("event", sa.String(length=80), nullable=False),
        sa.Column("from_status", sa.String(), nullable=True),
        sa.Column("to_status", sa.String(), nullable=True),
        sa.Column("detail_json", sa.Text(), server_default="{}", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_history")),
    )
    with op.batch_alter_table("event_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_event_history_run_id"), ["run_id"], unique=False)

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period_offset", sa.Integer(), nullable=False),
        sa.Column("period_start_ts", sa.BigInteger(), nullable=False),
        sa.Column("period_end_ts", sa.BigInteger(), nullable=False),
        sa.Column("network", sa.String(), nullable=False),
        sa.Column("snapshot_sha256", sa.String(length=64), nullable=False),
        sa.Column("snapshot_name", sa.String(), nullable=False),
        sa.Column("code_version", sa.String(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total_musd", sa.BigInteger(), nullable=False),
        sa.Column("total_tft_units", sa.BigInteger(), nullable=False),
        sa.Column("payable_tft_units", sa.BigInteger(), nullable=False),
        sa.Column("node_count", sa.Integer(), nullable=False),
        sa.Column("rewarded_node_count", sa.Integer(), nullable=False),
        sa.Column("report_json", sa.Text(), nullable=False),
        sa.Column("replaces_run_id", sa.Integer(), nullable=True),
        sa.Column("status_reason", sa.String(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["replaces_run_id"], ["runs.id"], name=op.f("fk_runs_replaces_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runs")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_period_offset"), ["period_offset"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_snapshot_sha256"), ["snapshot_sha256"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_status"), ["status"], unique=False)
        batch_op.create_index(
            "uq_runs_live_period",
            ["period_offset"],
            unique=True,
            sqlite_where=sa.text("status NOT IN ('replaced', 'rejected')"),
            postgresql_where=sa.text("status NOT IN ('replaced', 'rejected')"),
        )

    op.create_table(
        "receipts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.Integer(), nullable=False),
        sa.Column("farm_id", sa.Integer(), nullable=False),
        sa.Column("twin_id", sa.Integer(), nullable=False),
        sa.Column("farm_name", sa.String(), nullable=False),
        sa.Column("farming_policy_id", sa.Integer(), nullable=False),
        sa.Column("node_type", sa.String(length=10), nullable=False),
        sa.Column("measured_uptime_s", sa.BigInteger(), nullable=False),
        sa.Column("uptime_permille", sa.Integer(), nullable=False),
        sa.Column("violation", sa.String(), nullable=True),
        sa.Column("eligibility", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("reward_musd", sa.BigInteger(), nullable=False),
        sa.Column("reward_tft_units", sa.BigInteger(), nullable=False),
        sa.Column("stellar_payout_address", sa.String(), nullable=False),
        sa.Column("cu_pm", sa.BigInteger(), nullable=False),
        sa.Column("su_pm", sa.BigInteger(), nullable=False),
        sa.Column("nu_pm", sa.BigInteger(), nullable=False),
        sa.Column("receipt_bytes", sa.LargeBinary(), nullable=False),
        sa.Column("receipt_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_receipts_run_id_runs")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receipts")),
        sa.UniqueConstraint("run_id", "node_id", name=op.f("uq_receipts_run_id_node_id")),
    )
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_receipts_eligibility"), ["eligibility"], unique=False)
        batch_op.create_index("ix_receipts_farm_id_run_id", ["farm_id", "run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_receipts_node_id"), ["node_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_receipts_receipt_hash"), ["receipt_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_receipts_run_id"), ["run_id"], unique=False)

    for statement in _guards(op.get_context().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER event_history_no_edit ON event_history")
        op.execute("DROP FUNCTION event_history_append_only()")
    else:
        op.execute("DROP TRIGGER event_history_no_update")
        op.execute("DROP TRIGGER event_history_no_delete")
    with op.batch_alter_table("receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_receipts_run_id"))
        batch_op.drop_index(batch_op.f("ix_receipts_receipt_hash"))
        batch_op.drop_index(batch_op.f("ix_receipts_node_id"))
        batch_op.drop_index("ix_receipts_farm_id_run_id")
        batch_op.drop_index(batch_op.f("ix_receipts_eligibility"))

    op.drop_table("receipts")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_runs_live_period",
            sqlite_where=sa.text("status NOT IN ('replaced', 'rejected')"),
            postgresql_where=sa.text("status NOT IN ('replaced', 'rejected')"),
        )
        batch_op.drop_index(batch_op.f("ix_runs_status"))
        batch_op.drop_index(batch_op.f("ix_runs_snapshot_sha256"))
        batch_op.drop_index(batch_op.f("ix_runs_period_offset"))

    op.drop_table("runs")
    with op.batch_alter_table("event_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_event_history_run_id"))

    op.drop_table("event_history")
