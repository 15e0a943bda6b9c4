"""Wide integers in the ledger: the chain's u64 values and sums of them survive a round trip
exactly, on SQLite (decimal text) and PostgreSQL (NUMERIC(39,0))."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlmodel import Session

from payouts.ledger import repository
from payouts.ledger.models import Run
from payouts.runs.service import calculate_run
from payouts.snapshot.load import load_snapshot
from tests import factories

U64_MAX = 2**64 - 1


def _hostile_month(tmp_path):
    nodes = [
        factories.node(1),
        factories.node(2, consumption={**factories.node()["consumption"], "ip_seconds": 2**63}),
        factories.node(3, consumption={**factories.node()["consumption"], "nru": U64_MAX}),
        factories.node(4, consumption={**factories.node()["consumption"], "hru_seconds": 2**100}),
        factories.node(5, resources={"cru": U64_MAX, "mru": U64_MAX, "sru": U64_MAX, "hru": U64_MAX}),
    ]
    document = factories.snapshot(nodes=nodes)
    path = tmp_path / "hostile.json"
    path.write_text(json.dumps(document))
    return path


def test_a_hostile_month_is_recorded_and_read_back_exactly(session: Session, tmp_path):
    snapshot = load_snapshot(_hostile_month(tmp_path))
    outcome = calculate_run(session, snapshot)
    session.commit()
    assert outcome.run is not None and outcome.calculation is not None
    calculated = {r.node_id: r for r in outcome.calculation.receipts}
    session.expire_all()
    stored = {r.node_id: r for r in repository.receipts_of_run(session, outcome.run.id)}
    assert set(stored) == {1, 2, 3, 4, 5}
    for node_id, receipt in calculated.items():
        row = stored[node_id]
        for name in ("measured_uptime_s", "reward_musd", "reward_tft_units", "cu_pm", "su_pm", "nu_pm"):
            assert getattr(row, name) == getattr(receipt, name), (node_id, name)
            assert type(getattr(row, name)) is int
        assert row.receipt_bytes == receipt.receipt_bytes
    assert stored[2].eligibility == stored[3].eligibility == "invalid_record"
    assert stored[4].eligibility == "ok"
    # all-u64::MAX resources: minting's tft x permille would wrap
    assert stored[5].eligibility == "invalid_record" and "u64 arithmetic" in stored[5].reason


@pytest.mark.parametrize("value", [0, 1, 2**63 - 1, 2**63, U64_MAX, 2**64, 10 * U64_MAX, 2**128 - 1])
def test_wide_columns_hold_every_u64_and_sums_of_them(session: Session, value):
    run = Run(
        period_offset=81,
        period_start_ts=1,
        period_end_ts=2,
        network="dev",
        snapshot_sha256="ab" * 32,
        code_version="test",
        status="calculated",
        total_musd=value,
        total_tft_units=value,
        payable_tft_units=value,
        node_count=0,
        rewarded_node_count=0,
        report_json="{}",
    )
    session.add(run)
    session.commit()
    run_id = run.id
    session.expire_all()
    again = session.get(Run, run_id)
    assert again is not None and again.total_tft_units == value and type(again.total_tft_units) is int
    raw = session.execute(text("SELECT total_tft_units FROM runs WHERE id = :id"), {"id": run_id}).scalar()
    assert int(raw) == value  # stored exactly (text or NUMERIC), never through a float
