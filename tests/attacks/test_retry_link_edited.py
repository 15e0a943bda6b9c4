"""Paid at most once: a retry's link to the payment it retries (`retry_of_payment_id`) is checked
against its retry receipt before anything is signed. Paying a retry settles the linked payment;
before, a link edited between approval and pay (pointed at the farm's other held payment) passed
the gate, the really retried payment stayed held, and the next month retried and paid it again
(SQLite and PostgreSQL, the sandbox over HTTP)."""

from __future__ import annotations

import dataclasses

import pytest
from sqlmodel import Session, select
from stellar_sdk import Keypair

from payouts.ledger.db import session_scope
from payouts.ledger.models import Payment, Run
from payouts.ledger.states import PaymentStatus, RunStatus
from payouts.runs.monthly import continue_run
from payouts.runs.payment import PaymentEngine, RunStopped
from payouts.runs.service import calculate_run
from tests.runs.conftest import paying  # noqa: F401
from tests.runs.test_retries_now import _add_trustline, _approve, _month, _to


def test_a_retry_linked_to_another_held_payment_is_refused_before_signing(paying, tmp_path):  # noqa: F811
    _sandbox, document, db, run_id, fixture_engine = paying(approve=False)
    approver = Keypair.random()
    config = dataclasses.replace(fixture_engine.config, approvers=(approver.public_key,))
    engine = PaymentEngine(fixture_engine.units, fixture_engine.client, fixture_engine.keys, config)
    _approve(db, run_id, approver)
    assert engine.pay(run_id).status == RunStatus.PAID
    farmer = next(f for f in document["farmers"] if not f["trustline"])
    _add_trustline(engine.client, document, farmer)
    with session_scope(db) as session:
        month2 = calculate_run(session, _month(tmp_path, document["farmers"], 82)).run.id
    _approve(db, month2, approver)

    # between approval and pay, both retries are made to point at the same held payment
    with session_scope(db) as session:
        retries = session.exec(
            select(Payment).where(Payment.run_id == month2, Payment.kind == "retry").order_by(Payment.id)
        ).all()
        assert len(retries) == 2
        edited_id, true_link = retries[1].id, retries[1].retry_of_payment_id
        retries[1].retry_of_payment_id = retries[0].retry_of_payment_id
        session.add(retries[1])
    with pytest.raises(RunStopped, match=rf"payment {edited_id} \(retry.*retry_of_payment_id"):
        engine.pay(month2)
    assert _to(engine.client, document, farmer["public_key"]) == []

    # the link put back, the run continues and the next month retries nothing again
    with session_scope(db) as session:
        session.get(Payment, edited_id).retry_of_payment_id = true_link
    with session_scope(db) as session:
        continue_run(session, session.get(Run, month2))
    assert engine.pay(month2).status == RunStatus.PAID
    with Session(db) as session:
        originals = session.exec(
            select(Payment).where(Payment.run_id == run_id, Payment.destination == farmer["public_key"])
        ).all()
        assert sorted(p.status for p in originals) == [PaymentStatus.RETRIED, PaymentStatus.RETRIED]
    with session_scope(db) as session:
        month3 = calculate_run(session, _month(tmp_path, document["farmers"], 83)).run.id
    _approve(db, month3, approver)
    assert engine.pay(month3).status == RunStatus.PAID
    with Session(db) as session:
        owed = [p.amount_tft_units for p in originals]
        own = [
            p.amount_tft_units
            for p in session.exec(
                select(Payment).where(
                    Payment.run_id.in_([month2, month3]),
                    Payment.kind == "receipt",
                    Payment.destination == farmer["public_key"],
                )
            ).all()
        ]
    assert _to(engine.client, document, farmer["public_key"]) == sorted(owed + own)
