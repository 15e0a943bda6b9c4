"""Paid at most once: a run that paid on chain and then stopped (here a reconciliation mismatch
from a payment an operator sent by hand from the payout account) cannot be rejected. Before, the
rejection went through, the period was calculated again from the same snapshot, and the new run
paid every receipt a second time (SQLite and PostgreSQL, the sandbox over HTTP)."""

from __future__ import annotations

import dataclasses

import pytest
from sqlmodel import Session
from stellar_sdk import Account, Asset, Keypair, TransactionBuilder

from payouts.ledger.db import session_scope
from payouts.ledger.models import Run
from payouts.ledger.states import RunStatus
from payouts.ledger.unit_of_work import UnitsOfWork
from payouts.runs.approvals import approve_run, build_manifest, reject_run, sign_manifest
from payouts.runs.errors import RunsError
from payouts.runs.payment import PaymentEngine
from payouts.runs.payment.queries import stop_run
from payouts.runs.reconcile import reconcile_run, record_reconciliation
from payouts.runs.service import calculate_run
from tests.runs.conftest import paying  # noqa: F401
from tests.support.payments import chain_payments, grid_snapshot


def _approve(db, run_id: int, approver: Keypair) -> None:
    with session_scope(db) as session:
        run = session.get(Run, run_id)
        approve_run(
            session,
            run,
            public_key=approver.public_key,
            signature_b64=sign_manifest(build_manifest(session, run), approver),
            approvers=[approver.public_key],
            required=1,
        )


def _send_by_hand(engine, document: dict) -> None:
    payout = Keypair.from_secret(document["payout"]["secret"])
    account = engine.client.account(payout.public_key)
    envelope = (
        TransactionBuilder(Account(payout.public_key, account.sequence), document["network_passphrase"], 100)
        .append_payment_op(
            document["treasury"]["public_key"], Asset(document["asset"]["code"], document["asset"]["issuer"]), "1"
        )
        .set_timeout(60)
        .build()
    )
    envelope.sign(payout)
    assert engine.client.submit(envelope.to_xdr()).outcome == "success"


def test_a_paid_run_that_stopped_cannot_be_rejected_and_paid_again(paying, tmp_path):  # noqa: F811
    _sandbox, document, db, run_id, engine = paying(approve=False)
    approver = Keypair.random()
    engine = PaymentEngine(
        UnitsOfWork(db),
        engine.client,
        engine.keys,
        dataclasses.replace(engine.config, approvers=(approver.public_key,)),
    )
    _approve(db, run_id, approver)
    assert engine.pay(run_id).status == RunStatus.PAID
    paid_once = len(chain_payments(engine.client, document))
    assert paid_once == 8

    _send_by_hand(engine, document)
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
        assert session.get(Run, run_id).status == RunStatus.STOPPED

    # "redo the month": refused, naming what is on chain and what to do instead
    refused = r"cannot be rejected: 8 of its payments are paid.*payouts continue"
    with pytest.raises(RunsError, match=refused), session_scope(db) as session:
        reject_run(session, session.get(Run, run_id), "redo the month")
    with Session(db) as session:
        assert session.get(Run, run_id).status == RunStatus.STOPPED

    # the period stays held by the stopped run: calculating it again records no second run
    (tmp_path / "again").mkdir()
    with session_scope(db) as session:
        outcome = calculate_run(session, grid_snapshot(tmp_path / "again", document["farmers"]))
        assert not outcome.created and outcome.run is not None and outcome.run.id == run_id
    on_chain = [r for r in chain_payments(engine.client, document) if r["to"] != document["treasury"]["public_key"]]
    assert len(on_chain) == paid_once


def test_a_stopped_run_that_paid_nothing_can_still_be_rejected(paying):  # noqa: F811
    _sandbox, _document, db, run_id, _engine = paying(approve=False)
    _approve(db, run_id, Keypair.random())
    with session_scope(db) as session:
        stop_run(session, session.get(Run, run_id), "preflight: the payout account is short")
    with session_scope(db) as session:
        reject_run(session, session.get(Run, run_id), "wrong snapshot")
    with Session(db) as session:
        assert session.get(Run, run_id).status == RunStatus.REJECTED
