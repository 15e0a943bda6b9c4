"""Run states: the transitions table is enforced, compare-and-set wins once, history is
append-only. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, select

from payouts.ledger.errors import InvalidTransition, StaleStatus
from payouts.ledger.models import LedgerEvent, Run
from payouts.ledger.states import RUN_TRANSITIONS, RunStatus, transition
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
        transitions=RUN_TRANSITIONS,
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
        transition(
            session, Run, run.id, RunStatus.CALCULATED, RunStatus.PAID, transitions=RUN_TRANSITIONS, event="run.paid"
        )


def test_second_compare_and_set_from_the_same_status_loses(session):
    run = _run(session)
    transition(
        session,
        Run,
        run.id,
        RunStatus.CALCULATED,
        RunStatus.APPROVED,
        transitions=RUN_TRANSITIONS,
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
            transitions=RUN_TRANSITIONS,
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
        transitions=RUN_TRANSITIONS,
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
