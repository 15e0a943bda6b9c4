"""A period is calculated only once its post-period window has closed by the clock handed in;
a rehearsal calculates earlier on the sandbox network only, and is marked as one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import Session, select

from payouts.clock import FixedClock
from payouts.ledger.models import Payment, Receipt, Run
from payouts.periods import Period
from payouts.runs.completeness import (
    PeriodIncomplete,
    RehearsalRefused,
    due_text,
    inputs_complete_at,
    require_complete,
)
from payouts.runs.service import calculate_run
from payouts.sandbox import running_sandbox
from payouts.snapshot.load import load_snapshot
from payouts.stellar.clock import ChainClock
from payouts.wiring import build_monthly_job
from tests import factories
from tests.support.monthly import prepare_month

DECEMBER = Period.from_label("2026-12")


def _at(ts: int) -> FixedClock:
    return FixedClock(datetime.fromtimestamp(ts, UTC))


def test_the_due_text_names_the_period_end_and_when_its_inputs_are_complete():
    assert due_text(DECEMBER) == (
        "2026-12 ends 2026-12-31 18:56:40 UTC; its inputs are complete after 2027-01-01 21:56:40 UTC"
    )
    assert inputs_complete_at(DECEMBER) - DECEMBER.end == timedelta(hours=27)


def test_a_period_is_complete_from_the_end_of_its_post_period_window():
    with pytest.raises(PeriodIncomplete) as caught:
        require_complete(DECEMBER, _at(DECEMBER.window_end_ts - 1), network="main")
    assert due_text(DECEMBER) in str(caught.value) and "a fixed clock" in str(caught.value)
    with pytest.raises(PeriodIncomplete):
        require_complete(DECEMBER, _at(DECEMBER.start_ts + 86_400), network="dev")
    require_complete(DECEMBER, _at(DECEMBER.window_end_ts), network="main")


def test_a_rehearsal_is_refused_on_the_main_and_test_networks_at_any_time():
    for network in ("main", "test"):
        with pytest.raises(RehearsalRefused, match=f"sandbox network .dev. only; this is the {network} network"):
            require_complete(DECEMBER, _at(DECEMBER.window_end_ts + 10**6), network=network, rehearsal=True)
    require_complete(DECEMBER, _at(DECEMBER.start_ts), network="dev", rehearsal=True)


def _december(tmp_path, network: str = "dev"):
    document = factories.snapshot(
        period_offset=DECEMBER.offset, nodes=[factories.node(1234), factories.node(1300)], network=network
    )
    return load_snapshot(factories.write(tmp_path / f"december-{network}.json", document))


def test_calculating_an_unended_period_is_refused_and_records_nothing(session, tmp_path):
    snapshot = _december(tmp_path)
    with pytest.raises(PeriodIncomplete, match="2026-12 ends 2026-12-31 18:56:40 UTC"):
        calculate_run(session, snapshot, clock=_at(DECEMBER.end_ts))
    with pytest.raises(PeriodIncomplete):
        calculate_run(session, snapshot, clock=_at(DECEMBER.end_ts), dry_run=True)
    assert session.exec(select(Run)).all() == []
    assert session.exec(select(Receipt)).all() == []


def test_a_rehearsal_is_marked_and_otherwise_the_same_calculation(session, tmp_path):
    snapshot = _december(tmp_path)
    early = _at(DECEMBER.start_ts + 3 * 86_400)
    outcome = calculate_run(session, snapshot, clock=early, rehearsal=True)
    session.commit()
    assert outcome.created and outcome.run.rehearsal is True
    later = calculate_run(session, snapshot, clock=_at(DECEMBER.window_end_ts), dry_run=True)
    recorded = session.exec(select(Receipt).where(Receipt.run_id == outcome.run.id).order_by(Receipt.node_id)).all()
    assert [r.receipt_hash for r in recorded] == [r.receipt_hash for r in later.calculation.receipts]
    payments = session.exec(select(Payment).where(Payment.run_id == outcome.run.id)).all()
    assert sum(p.amount_tft_units for p in payments) == outcome.run.total_tft_units > 0


def test_a_rehearsal_of_a_test_network_snapshot_is_refused(session, tmp_path):
    with pytest.raises(RehearsalRefused):
        calculate_run(session, _december(tmp_path, "test"), clock=_at(DECEMBER.start_ts), rehearsal=True)
    assert session.exec(select(Run)).all() == []


@pytest.fixture
def sandbox():
    with running_sandbox(ledger_close_s=0.1, submission_timeout_s=5) as server:
        yield server


def test_the_monthly_job_waits_for_complete_inputs_and_carries_a_rehearsal_along(sandbox, sqlite_url, tmp_path):
    month = prepare_month(tmp_path, sandbox.url, sqlite_url)
    early = _at(month.period.end_ts + 3600)
    monthly_job = build_monthly_job(month.settings, month.db, clock=early)
    assert monthly_job.due_periods() == []
    step = monthly_job.advance(month.period.offset)
    assert step.run_id is None and step.did == []
    assert step.waits_for.startswith(f"inputs: {due_text(month.period)}")
    with Session(month.db) as session:
        assert session.exec(select(Run)).all() == []

    rehearsed = monthly_job.advance(month.period.offset, rehearsal=True)
    assert rehearsed.did[0] == "calculate" and rehearsed.status == "calculated"
    with Session(month.db) as session:
        (run,) = session.exec(select(Run)).all()
        assert run.rehearsal is True and run.id == rehearsed.run_id
    # the daily trigger keeps a rehearsal moving although its period is not due by the clock
    assert [p.offset for p in monthly_job.due_periods()] == [month.period.offset]


def test_the_chain_clock_reads_the_latest_ledger_and_says_when_it_cannot(sandbox):
    clock = ChainClock(sandbox.url)
    chain_now = clock.now()
    assert clock.source.startswith("the chain's time (ledger ")
    assert abs((chain_now - datetime.now(UTC)).total_seconds()) < 120  # the sandbox closes on the wall clock
    unreachable = ChainClock("http://127.0.0.1:1")
    unreachable.now()
    assert unreachable.source == "this machine's clock (Horizon unreachable)"
