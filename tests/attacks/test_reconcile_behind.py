"""Reconciliation through a lagging replica (SQLite and PostgreSQL): the submissions were
answered by the primary (the payments are confirmed), the listing comes from a replica that has
not seen those ledgers yet. Reconciling then would report every recent payment missing and stop
a run that is paid correctly; it waits instead, and reconciles once the replica caught up."""

from __future__ import annotations

import time

from sqlmodel import Session, select

from payouts.ledger.db import session_scope
from payouts.ledger.models import Payment, Run
from payouts.ledger.states import PaymentStatus, RunStatus
from payouts.runs.reconcile import reconcile_run, record_reconciliation
from payouts.sandbox.faults import FaultSpec, SubmitFault
from tests.runs.conftest import paying  # noqa: F401
from tests.support.payments import check_invariants


def _reconcile(db, run_id, engine, document):
    with session_scope(db) as session:
        run = session.get(Run, run_id)
        result = reconcile_run(
            session,
            run,
            engine.client,
            document["payout"]["public_key"],
            document["asset"]["code"],
            document["asset"]["issuer"],
        )
        record_reconciliation(session, run, result)
    with Session(db) as session:
        return result, session.get(Run, run_id).status


def test_reconciliation_behind_a_lagging_replica_waits_and_never_stops_a_paid_run(paying):  # noqa: F811
    sandbox, document, db, run_id, engine = paying(ledger_close_s=0.1, channels=2)
    # every submission is answered once it landed (a delayed inclusion: the primary answers),
    # while reads come from a replica 5 s behind: the payer's first claim read waits for it to
    # see the claim, and the run's last payments land within the lag before reconciling
    sandbox.faults.spec = FaultSpec.parse("delay=0:1")
    sandbox.faults.force(SubmitFault.delay, times=50)
    sandbox.view.set_lag(5.0)
    report = engine.pay(run_id)
    assert report.status == RunStatus.PAID and report.paid == 8
    with Session(db) as session:
        paid = session.exec(select(Payment).where(Payment.status == PaymentStatus.PAID)).all()
    assert max(p.ledger for p in paid) > sandbox.view.visible_sequence()  # the replica has not seen them

    result, status = _reconcile(db, run_id, engine, document)
    assert not result.clean and result.behind and not result.differences
    assert status == RunStatus.PAID  # waits; not stopped for an operator

    sandbox.view.set_lag(0.0)  # the replica caught up
    time.sleep(0.2)
    result, status = _reconcile(db, run_id, engine, document)
    assert result.clean and status == RunStatus.RECONCILED
    check_invariants(db, engine.client, document, run_id)
