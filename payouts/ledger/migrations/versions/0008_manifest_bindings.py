"""ledger identity, rejected manifests, approver sets (manifest version 2)

Run manifests gain a payments tree and name the run, the network, the payout account and the
ledger; approvals of the earlier manifest no longer count, and each run they covered is named in
an event (`payouts db upgrade` lists them: they need new approvals).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import uuid

import sqlalchemy as sa
from alembic import op

from payouts.ledger.types import UtcDateTime, utcnow

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    identity = op.create_table(
        "ledger_identity",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ledger_id", sa.String(length=36), nullable=False),
        sa.Column("payout_account", sa.String(length=56), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_identity")),
        sa.UniqueConstraint("ledger_id", name=op.f("uq_ledger_identity_ledger_id")),
    )
    op.create_table(
        "rejected_manifests",
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), server_default="", nullable=False),
        sa.Column("rejected_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name=op.f("fk_rejected_manifests_run_id_runs")),
        sa.PrimaryKeyConstraint("manifest_sha256", name=op.f("pk_rejected_manifests")),
    )
    with op.batch_alter_table("rejected_manifests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rejected_manifests_run_id"), ["run_id"], unique=False)
    op.create_table(
        "approver_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("approvers_json", sa.Text(), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("previous_id", sa.Integer(), nullable=True),
        sa.Column("signatures_json", sa.Text(), server_default="{}", nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["previous_id"], ["approver_sets.id"], name=op.f("fk_approver_sets_previous_id_approver_sets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approver_sets")),
    )
    now = utcnow()
    op.bulk_insert(identity, [{"id": 1, "ledger_id": str(uuid.uuid4()), "payout_account": None, "created_at": now}])
    # runs approved under manifest version 1 need new approvals: say so in their history
    connection = op.get_bind()
    runs = connection.execute(
        sa.text(
            "SELECT DISTINCT runs.id FROM runs JOIN approvals ON approvals.run_id = runs.id "
            "WHERE runs.status IN ('approved', 'funding', 'funded', 'paying', 'stopped')"
        )
    ).all()
    events = sa.table(
        "ledger_events",
        sa.column("occurred_at", UtcDateTime()),
        sa.column("run_id", sa.Integer()),
        sa.column("entity", sa.String()),
        sa.column("entity_id", sa.Integer()),
        sa.column("event", sa.String()),
        sa.column("detail_json", sa.Text()),
    )
    if runs:
        op.bulk_insert(
            events,
            [
                {
                    "occurred_at": now,
                    "run_id": run_id,
                    "entity": "runs",
                    "entity_id": run_id,
                    "event": "run.approvals.need_renewal",
                    "detail_json": '{"manifest_version": 2, "reason": "approvals of manifest version 1 no '
                    'longer count: the manifest now binds every payment; approve the run again"}',
                }
                for (run_id,) in runs
            ],
        )


def downgrade() -> None:
    op.drop_table("approver_sets")
    with op.batch_alter_table("rejected_manifests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rejected_manifests_run_id"))
    op.drop_table("rejected_manifests")
    op.drop_table("ledger_identity")
