"""Recording runs: the same snapshot is a no-op, a different one is refused unless replaced
before approval, and a refused snapshot writes nothing. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlmodel import select

from payouts.ledger import repository
from payouts.ledger.models import LedgerEvent, Receipt, Run
from payouts.ledger.states import RunStatus, transition
from payouts.runs.errors import RunExistsForPeriod, RunNotReplaceable
from payouts.runs.service import calculate_run, calculation_document
from payouts.snapshot.load import SnapshotError, load_snapshot
from tests import factories


def _two_node_snapshot(tmp_path, name="s.json", **node_overrides):
    document = factories.snapshot(nodes=[factories.node(1234), factories.node(1300, **node_overrides)])
    return load_snapshot(factories.write(tmp_path / name, document))


def _counts(session) -> tuple[int, int, int]:
    runs = len(session.exec(select(Run)).all())
    receipts = len(session.exec(select(Receipt)).all())
    events = len(session.exec(select(LedgerEvent)).all())
    return runs, receipts, events


def test_calculation_records_the_run_and_one_receipt_per_node(session, tmp_path):
    snapshot = _two_node_snapshot(tmp_path)
    outcome = calculate_run(session, snapshot)
    session.commit()
    assert outcome.created and outcome.run.status == RunStatus.CALCULATED
    receipts = repository.receipts_of_run(session, outcome.run.id)
    assert [r.node_id for r in receipts] == [1234, 1300]
    assert outcome.run.total_tft_units == sum(r.reward_tft_units for r in receipts) > 0
    assert all(isinstance(r.reward_tft_units, int) for r in receipts)
    assert outcome.run.snapshot_sha256 == snapshot.sha256
    by_node = {r.node_id: r for r in outcome.calculation.receipts}
    for stored in receipts:
        assert stored.receipt_bytes == by_node[stored.node_id].receipt_bytes
        assert stored.receipt_hash == by_node[stored.node_id].receipt_hash


def test_same_snapshot_again_is_a_no_op_returning_the_existing_run(session, tmp_path):
    first = calculate_run(session, _two_node_snapshot(tmp_path))
    session.commit()
    before = _counts(session)
    again = calculate_run(session, _two_node_snapshot(tmp_path, "copy.json"))
    session.commit()
    assert not again.created and again.run.id == first.run.id
    assert _counts(session) == before


def test_different_snapshot_is_refused_without_replace(session, tmp_path):
    calculate_run(session, _two_node_snapshot(tmp_path))
    session.commit()
    before = _counts(session)
    other = _two_node_snapshot(tmp_path, "other.json", connection_price=90)
    with pytest.raises(RunExistsForPeriod, match="--replace"):
        calculate_run(session, other)
    session.rollback()
    assert _counts(session) == before


def test_replace_before_approval_supersedes_the_old_run(session, tmp_path):
    first = calculate_run(session, _two_node_snapshot(tmp_path))
    session.commit()
    other = _two_node_snapshot(tmp_path, "other.json", connection_price=90)
    second = calculate_run(session, other, replace=True)
    session.commit()
    session.expire_all()
    assert second.replaced_run_id == first.run.id
    assert session.get(Run, first.run.id).status == RunStatus.REPLACED
    assert session.get(Run, second.run.id).replaces_run_id == first.run.id
    # the old run's receipts stay in the ledger: history is never edited away
    assert len(repository.receipts_of_run(session, first.run.id)) == 2


def test_replace_is_refused_after_approval(session, tmp_path):
    first = calculate_run(session, _two_node_snapshot(tmp_path))
    transition(
        session,
        Run,
        first.run.id,
        RunStatus.CALCULATED,
        RunStatus.APPROVED,
        event="run.approved",
    )
    session.commit()
    other = _two_node_snapshot(tmp_path, "other.json", connection_price=90)
    with pytest.raises(RunNotReplaceable, match="approved"):
        calculate_run(session, other, replace=True)


def test_dry_run_records_nothing(session, tmp_path):
    outcome = calculate_run(session, _two_node_snapshot(tmp_path), dry_run=True)
    session.commit()
    assert outcome.run is None and len(outcome.calculation.receipts) == 2
    assert _counts(session) == (0, 0, 0)


def test_a_bad_event_deep_in_the_file_leaves_the_ledger_untouched(session, tmp_path):
    calculate_run(session, _two_node_snapshot(tmp_path))
    session.commit()
    before = _counts(session)
    document = factories.snapshot(period_offset=82, nodes=[factories.node(1), factories.node(2)])
    document["uptime_events"][-1]["uptime"] = "oops"
    snapshot = load_snapshot(factories.write(tmp_path / "bad.json", document))
    with pytest.raises(SnapshotError, match=r"uptime_events\[\d+\]\.uptime"):
        calculate_run(session, snapshot)
    session.rollback()
    assert _counts(session) == before


def test_document_from_the_ledger_equals_the_document_from_the_calculation(session, tmp_path):
    outcome = calculate_run(session, _two_node_snapshot(tmp_path))
    session.commit()
    fresh = calculation_document(outcome.period, outcome.run.id, outcome.snapshot_sha256, outcome.calculation.receipts)
    stored = calculation_document(
        outcome.period, outcome.run.id, outcome.snapshot_sha256, repository.receipts_of_run(session, outcome.run.id)
    )
    assert fresh == stored
    assert fresh["totals"]["nodes"] == 2
    assert fresh["period"] == {"offset": 81, "start": 1735602280, "end": 1738233160}


def test_two_concurrent_calculations_of_one_snapshot_record_one_run(engine, tmp_path):
    import threading

    from payouts.ledger.db import session_scope

    path = factories.write(tmp_path / "s.json", factories.snapshot(nodes=[factories.node(n) for n in range(1, 40)]))
    barrier = threading.Barrier(2)
    outcomes, errors = [], []

    def calculate() -> None:
        snapshot = load_snapshot(path)
        barrier.wait()
        try:
            with session_scope(engine) as session:
                outcomes.append(calculate_run(session, snapshot))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=calculate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(o.created for o in outcomes) == [False, True]
    assert outcomes[0].run.id == outcomes[1].run.id
    from sqlmodel import Session

    with Session(engine) as session:
        assert _counts(session)[:2] == (1, 39)


def test_a_node_that_moved_to_the_revenue_model_gets_no_proof_of_capacity_payout(session, tmp_path):
    from payouts.export.signons import SignonFileError, import_node_transitions
    from payouts.periods import Period

    snapshot = _two_node_snapshot(tmp_path)
    node_ids = sorted(n.node_id for n in snapshot.header.nodes)
    period = Period(snapshot.header.period_offset)
    bad = tmp_path / "bad.csv"
    bad.write_text("node_id,v3_opted_out_at,v4_account\n1,2025-01-10,acc\nx,,\n")
    with pytest.raises(SignonFileError, match="bad.csv line 3: node_id 'x'"):
        import_node_transitions(session, bad)
    moves = tmp_path / "nodes.csv"
    opted = period.start.isoformat().replace("+00:00", "Z")
    moves.write_text(f"node_id,v3_opted_out_at,v4_account\n{node_ids[0]},{opted},GV4ACCOUNT\n{node_ids[1]},,\n")
    report = import_node_transitions(session, moves)
    assert (report.added, report.updated) == (2, 0)
    assert import_node_transitions(session, moves).unchanged == 2  # importing again changes nothing
    receipts = {r.node_id: r for r in calculate_run(session, snapshot).calculation.receipts}
    assert receipts[node_ids[0]].eligibility == "opted_out" and receipts[node_ids[0]].reward_tft_units == 0
    assert receipts[node_ids[1]].eligibility == "ok" and receipts[node_ids[1]].reward_tft_units > 0
