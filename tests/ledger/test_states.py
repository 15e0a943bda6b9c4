"""Run states: the transitions table is enforced, compare-and-set wins once, history is
append-only. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, select

from payouts.ledger.errors import InvalidTransition, StaleStatus
from payouts.ledger.kinds import HashKind, PaymentDelivery, PaymentKind, PayoutBasis, RunKind, TransactionPurpose
from payouts.ledger.models import LedgerEvent, Payment, Run, StellarTransaction
from payouts.ledger.states import (
    DEAD_RUN_STATUSES,
    FINISHED_RUN_STATUSES,
    LIVE_RUN_STATUSES,
    PAYABLE_RUN_STATUSES,
    PAYMENT_TRANSITIONS,
    RUN_TRANSITIONS,
    SETTLED_RUN_STATUSES,
    TRANSACTION_TRANSITIONS,
    TRANSITIONS,
    PaymentStatus,
    RunStatus,
    TransactionStatus,
    transition,
)
from payouts.ledger.types import utcnow


def _run(session: Session, period_offset: int = 91, status: RunStatus = RunStatus.CALCULATED) -> Run:
    now = utcnow()
    run = Run(
        period_offset=period_offset,
        period_start_ts=0,
        period_end_ts=1,
        network="dev",
        snapshot_sha256="ab" * 32,
        code_version="test",
        status=status,
        total_musd=0,
        total_tft_units=0,
        payable_tft_units=0,
        node_count=0,
        rewarded_node_count=0,
        report_json="{}",
        created_at=now,
        updated_at=now,
    )
    session.add(run)
    session.commit()
    return run


def test_every_status_has_a_transition_row_and_a_waits_for():
    for status in RunStatus:
        assert status in RUN_TRANSITIONS
        assert status.waits_for


def test_allowed_transition_moves_the_row_and_appends_an_event(session):
    run = _run(session)
    transition(
        session,
        Run,
        run.id,
        RunStatus.CALCULATED,
        RunStatus.APPROVED,
        event="run.approved",
    )
    session.commit()
    session.expire_all()
    assert session.get(Run, run.id).status == RunStatus.APPROVED
    events = session.exec(select(LedgerEvent).where(LedgerEvent.run_id == run.id)).all()
    assert [(e.event, e.from_status, e.to_status) for e in events] == [("run.approved", "calculated", "approved")]


def test_transition_not_in_the_table_is_refused(session):
    run = _run(session)
    with pytest.raises(InvalidTransition):
        transition(session, Run, run.id, RunStatus.CALCULATED, RunStatus.PAID, event="run.paid")


def test_second_compare_and_set_from_the_same_status_loses(session):
    run = _run(session)
    transition(
        session,
        Run,
        run.id,
        RunStatus.CALCULATED,
        RunStatus.APPROVED,
        event="run.approved",
    )
    session.commit()
    with pytest.raises(StaleStatus):
        transition(
            session,
            Run,
            run.id,
            RunStatus.CALCULATED,
            RunStatus.REJECTED,
            event="run.rejected",
        )
    session.rollback()
    assert session.get(Run, run.id).status == RunStatus.APPROVED


def test_one_live_run_per_period(session):
    _run(session, 91)
    with pytest.raises(IntegrityError):
        _run(session, 91)
    session.rollback()
    replaced = _run(session, 92, RunStatus.REPLACED)
    _run(session, 92)  # a replaced run does not hold its period
    assert replaced.id is not None


def test_event_history_refuses_edits_and_deletes(session):
    run = _run(session)
    transition(
        session,
        Run,
        run.id,
        RunStatus.CALCULATED,
        RunStatus.REJECTED,
        event="run.rejected",
    )
    session.commit()
    for statement in ("UPDATE event_history SET event = 'x'", "DELETE FROM event_history"):
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(text(statement))
        session.rollback()
    assert session.exec(select(LedgerEvent)).first().event == "run.rejected"


def test_times_come_back_timezone_aware_utc(session):
    run = _run(session)
    session.expire_all()
    loaded = session.get(Run, run.id)
    assert loaded.created_at.tzinfo is not None
    assert loaded.created_at.utcoffset().total_seconds() == 0


def test_each_status_model_has_its_own_table_and_every_status_a_row():
    assert TRANSITIONS[Run] is RUN_TRANSITIONS
    assert TRANSITIONS[Payment] is PAYMENT_TRANSITIONS
    assert TRANSITIONS[StellarTransaction] is TRANSACTION_TRANSITIONS
    assert set(PAYMENT_TRANSITIONS) == set(PaymentStatus)
    assert set(TRANSACTION_TRANSITIONS) == set(TransactionStatus)


def test_the_row_s_model_decides_the_allowed_edges(session):
    # no `transitions=` from the caller: the run table, looked up from `Run`, refuses the edge
    run = _run(session, period_offset=92)
    with pytest.raises(InvalidTransition):
        transition(session, Run, run.id, RunStatus.CALCULATED, RunStatus.EXPORTED, event="run.exported")
    session.rollback()
    assert session.get(Run, run.id).status == RunStatus.CALCULATED


def test_run_status_words_partition_as_the_monthly_job_reads_them():
    assert set(LIVE_RUN_STATUSES) | set(DEAD_RUN_STATUSES) == set(RunStatus)
    assert not set(LIVE_RUN_STATUSES) & set(DEAD_RUN_STATUSES)
    assert set(DEAD_RUN_STATUSES) == {RunStatus.REPLACED, RunStatus.REJECTED}
    assert set(PAYABLE_RUN_STATUSES) == {RunStatus.APPROVED, RunStatus.FUNDED, RunStatus.PAYING}
    assert {s for s in RunStatus if s.is_paid_or_after} == {RunStatus.PAID, RunStatus.RECONCILED, RunStatus.EXPORTED}
    assert set(SETTLED_RUN_STATUSES) == {RunStatus.EXPORTED, RunStatus.REPLACED, RunStatus.REJECTED}
    assert set(FINISHED_RUN_STATUSES) == {
        RunStatus.RECONCILED,
        RunStatus.EXPORTED,
        RunStatus.REPLACED,
        RunStatus.REJECTED,
    }
    # a payable run can always still be stopped, a finished one has left the payment engine
    for status in PAYABLE_RUN_STATUSES:
        assert RunStatus.STOPPED in RUN_TRANSITIONS[status]
        assert not status.is_finished


def test_kind_words_are_the_stored_strings():
    # no migration: rows written before the enums read back equal to the members
    assert [k.value for k in PaymentKind] == ["receipt", "retry", "correction"]
    assert PaymentKind("retry") == "retry" and f"{PaymentKind.RETRY}" == "retry"
    assert [b.value for b in PayoutBasis] == ["poc_treasury", "poc_minted", "revenue_share", "correction"]
    assert [p.value for p in TransactionPurpose] == ["payment", "funding", "sweep", "claim", "reclaim"]
    assert [d.value for d in PaymentDelivery] == ["payment", "claimable_balance"]
    assert [k.value for k in RunKind] == ["monthly", "off_cycle"]
    assert [k.value for k in HashKind] == ["inner", "fee_bump"]


def test_a_kind_member_reads_back_as_the_stored_string(session):
    run = _run(session, period_offset=93)
    session.execute(text("UPDATE runs SET kind = :kind WHERE id = :id"), {"kind": RunKind.OFF_CYCLE, "id": run.id})
    session.commit()
    stored = session.execute(text("SELECT kind FROM runs WHERE id = :id"), {"id": run.id}).scalar_one()
    assert stored == "off_cycle" and type(stored) is str
    assert session.get(Run, run.id, populate_existing=True).kind == RunKind.OFF_CYCLE


_PREDICATE_TABLE = {
    # status: (is_settled, is_in_flight, is_held, is_owed, is_outstanding, is_payable)
    PaymentStatus.PENDING: (False, False, False, True, True, True),
    PaymentStatus.HELD: (False, False, True, True, True, False),
    PaymentStatus.SUBMITTED: (False, True, False, True, True, True),
    PaymentStatus.PAID: (True, False, False, False, False, False),
    PaymentStatus.FAILED: (False, False, True, True, False, False),
    PaymentStatus.RETRIED: (False, False, False, False, False, False),
    PaymentStatus.CORRECTED: (True, False, False, False, False, False),
    PaymentStatus.CLAIMABLE: (True, False, False, False, False, False),
}


def test_predicate_table_covers_every_payment_status() -> None:
    assert set(_PREDICATE_TABLE) == set(PaymentStatus)


_CHAIN_TABLE = {
    # status: (is_on_chain, is_paid_or_landing)
    PaymentStatus.PENDING: (False, False),
    PaymentStatus.HELD: (False, False),
    PaymentStatus.SUBMITTED: (False, True),
    PaymentStatus.PAID: (True, True),
    PaymentStatus.FAILED: (False, False),
    PaymentStatus.RETRIED: (False, False),
    PaymentStatus.CORRECTED: (False, False),
    PaymentStatus.CLAIMABLE: (True, False),
}


def test_every_payment_status_is_classified_for_the_chain() -> None:
    assert set(_CHAIN_TABLE) == set(PaymentStatus)
    for status, expected in _CHAIN_TABLE.items():
        assert (status.is_on_chain, status.is_paid_or_landing) == expected, status


def test_every_transaction_status_is_classified_live_or_landed() -> None:
    expected = {
        TransactionStatus.BUILT: True,
        TransactionStatus.SUBMITTED: True,
        TransactionStatus.CONFIRMED: True,
        TransactionStatus.FAILED: False,
        TransactionStatus.DEAD: False,
    }
    assert set(expected) == set(TransactionStatus)
    for status, landed_or_live in expected.items():
        assert status.is_live_or_landed is landed_or_live, status


@pytest.mark.parametrize("status", list(PaymentStatus))
def test_payment_status_predicates(status: PaymentStatus) -> None:
    predicates = (
        status.is_settled,
        status.is_in_flight,
        status.is_held,
        status.is_owed,
        status.is_outstanding,
        status.is_payable,
    )
    assert predicates == _PREDICATE_TABLE[status]
