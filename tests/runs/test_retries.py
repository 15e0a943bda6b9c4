"""A payment held for its address is retried by the next period's run, once the farm has a
valid address: a minting-style retry receipt, paid once, settling the original."""

from __future__ import annotations

import base64

import orjson
import pytest
from sqlmodel import Session, select
from stellar_sdk import Keypair

from payouts.calculation.receipts import receipt_hash
from payouts.ledger.db import make_engine, session_scope
from payouts.ledger.models import Payment, Run
from payouts.ledger.states import PaymentStatus, RunStatus, transition
from payouts.ledger.unit_of_work import UnitsOfWork
from payouts.runs.approvals import approve_run, build_manifest, sign_manifest
from payouts.runs.payment import PayConfig, PaymentEngine
from payouts.runs.retries import retries_so_far
from payouts.runs.service import calculate_run
from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import init_sandbox
from payouts.snapshot.load import load_snapshot
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.keys import SigningKeys
from tests import factories
from tests.support.payments import check_invariants, fund_payout


def _month(tmp_path, offset: int, address_of_farm_2: str, farmer: str):
    farms = [
        {"farm_id": 1, "name": "one", "twin_id": 7, "certification": "NotCertified", "stellar_address": farmer},
        {
            "farm_id": 2,
            "name": "two",
            "twin_id": 7,
            "certification": "NotCertified",
            "stellar_address": address_of_farm_2,
        },
    ]
    nodes = [factories.node(10, farm_id=1), factories.node(20, farm_id=2)]
    document = factories.snapshot(period_offset=offset, nodes=nodes, farms=farms)
    return load_snapshot(factories.write(tmp_path / f"m{offset}.json", document))


def _approve(db, run_id, approver):
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


@pytest.fixture
def two_farms(ledger_url, tmp_path):
    """A sandbox with two farmers, a funded payout account, a ledger and a payment engine."""
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        document = init_sandbox(sandbox.url, tmp_path / "accounts.json", farmers=2, channels=2).document
        client = HorizonClient(sandbox.url)
        fund_payout(client, document, 10**5 * 10**7)
        db = make_engine(ledger_url)
        approver = Keypair.random()
        config = PayConfig(
            network_passphrase=document["network_passphrase"],
            asset_code="TFT",
            asset_issuer=document["asset"]["issuer"],
            approvers=(approver.public_key,),
            approvals_required=1,
            poll_interval_s=0.1,
            tx_timeout_s=30,
        )
        engine = PaymentEngine(
            UnitsOfWork(db), client, SigningKeys.from_accounts_file(tmp_path / "accounts.json"), config
        )
        yield document, client, db, approver, engine


@pytest.mark.parametrize("replace_first_retry_run", [False, True])
def test_held_payment_is_retried_next_period_and_paid_once(two_farms, tmp_path, replace_first_retry_run):
    document, client, db, approver, engine = two_farms
    farmer_1, farmer_2 = (f["public_key"] for f in document["farmers"])

    # period 81: farm 2 has no address: its payment is held
    with session_scope(db) as session:
        first = calculate_run(session, _month(tmp_path, 81, "", farmer_1)).run
    _approve(db, first.id, approver)
    assert engine.pay(first.id).paid == 1

    # period 82: farm 2 set an address; the held payment joins the run as a retry
    with session_scope(db) as session:
        second = calculate_run(session, _month(tmp_path, 82, farmer_2, farmer_1)).run
    if replace_first_retry_run:
        # a replaced run loses nothing: the replacement retries the same held payment
        other = _month(tmp_path, 82, farmer_2, farmer_1)
        other_doc = orjson.loads(other.path.read_bytes())
        other_doc["nodes"][0]["connection_price"] = 90
        replacement = load_snapshot(factories.write(tmp_path / "m82b.json", other_doc))
        with session_scope(db) as session:
            second = calculate_run(session, replacement, replace=True).run
    with Session(db) as session:
        retries = session.exec(select(Payment).where(Payment.run_id == second.id, Payment.kind == "retry")).all()
        original = session.exec(select(Payment).where(Payment.run_id == first.id, Payment.node_id == 20)).one()
    assert len(retries) == 1
    retry = retries[0]
    receipt = orjson.loads(retry.receipt_bytes)
    assert receipt["retry_for_receipt"] == original.receipt_hash
    assert receipt["stellar_payout_address"] == farmer_2 and receipt["previous_stellar_payout_address"] == ""
    assert receipt_hash(retry.receipt_bytes) == retry.receipt_hash
    assert retry.amount_tft_units == original.amount_tft_units and original.status == PaymentStatus.HELD

    _approve(db, second.id, approver)
    report = engine.pay(second.id)
    assert report.status == RunStatus.PAID and report.paid == 3  # nodes 10 and 20, and the retry
    with Session(db) as session:
        assert session.get(Payment, original.id).status == PaymentStatus.RETRIED
        assert session.get(Payment, retry.id).status == PaymentStatus.PAID
    check_invariants(db, client, document, first.id)
    check_invariants(db, client, document, second.id)

    # period 83: nothing left to retry
    with session_scope(db) as session:
        third = calculate_run(session, _month(tmp_path, 83, farmer_2, farmer_1)).run
    with Session(db) as session:
        assert session.exec(select(Payment).where(Payment.run_id == third.id, Payment.kind == "retry")).all() == []


@pytest.mark.parametrize("max_retries", [None, 0, 1])
def test_the_retry_count_setting_bounds_how_often_a_receipt_is_retried(ledger_url, tmp_path, max_retries):
    farmer_1, farmer_2 = Keypair.random().public_key, Keypair.random().public_key
    db = make_engine(ledger_url)
    with session_scope(db) as session:
        calculate_run(session, _month(tmp_path, 81, "", farmer_1), max_retries=max_retries)
    with session_scope(db) as session:
        second = calculate_run(session, _month(tmp_path, 82, farmer_2, farmer_1), max_retries=max_retries).run
        retry = session.exec(select(Payment).where(Payment.run_id == second.id, Payment.kind == "retry")).all()
    if max_retries == 0:
        assert retry == []
        return
    assert len(retry) == 1
    # the retry's destination turns out to have no trustline at preflight: it is held in turn
    with session_scope(db) as session:
        transition(
            session,
            Payment,
            retry[0].id,
            PaymentStatus.PENDING,
            PaymentStatus.HELD,
            event="payment.held.preflight",
            run_id=second.id,
            hold_reason="no_trustline",
        )
        assert retries_so_far(session, session.get(Payment, retry[0].id)) == 1
    with session_scope(db) as session:
        third = calculate_run(session, _month(tmp_path, 83, farmer_2, farmer_1), max_retries=max_retries).run
        again = session.exec(select(Payment).where(Payment.run_id == third.id, Payment.kind == "retry")).all()
    if max_retries == 1:
        assert again == []  # stays held, listed by `payouts held` as settled by hand
    else:
        assert len(again) == 1  # until paid: a retry of the retry
        assert orjson.loads(again[0].receipt_bytes)["retry_for_receipt"] == retry[0].receipt_hash


def test_a_correction_joins_the_next_run_and_is_paid_once_with_its_approval(two_farms, tmp_path):
    from payouts.export.corrections import record_correction

    document, client, db, approver, engine = two_farms
    farmer_1, farmer_2 = (f["public_key"] for f in document["farmers"])
    with session_scope(db) as session:
        first = calculate_run(session, _month(tmp_path, 81, farmer_2, farmer_1)).run
    _approve(db, first.id, approver)
    with Session(db) as session:
        node_10 = session.exec(select(Payment).where(Payment.run_id == first.id, Payment.node_id == 10)).one()
    with session_scope(db) as session:
        correction = record_correction(session, node_10.receipt_hash, 5 * 10**7, "uptime under-counted")
    # recorded after the manifest was signed: the run being paid does not pay it
    assert engine.pay(first.id).paid == 2
    with Session(db) as session:
        assert session.get(Payment, correction.payment_id).status == PaymentStatus.PENDING

    with session_scope(db) as session:
        second = calculate_run(session, _month(tmp_path, 82, farmer_2, farmer_1)).run
    with Session(db) as session:
        joined = session.get(Payment, correction.payment_id)
        assert joined.run_id == second.id and joined.in_manifest
        manifest = build_manifest(session, session.get(Run, second.id))
    assert manifest.payment_count == 3  # two receipts and the correction, all approved together
    _approve(db, second.id, approver)
    assert engine.pay(second.id).paid == 3
    with Session(db) as session:
        paid = session.get(Payment, correction.payment_id)
    assert paid.status == PaymentStatus.PAID and paid.destination == farmer_1
    assert paid.amount_tft_units == 5 * 10**7
    info = client.transaction(paid.tx_hash)
    assert base64.b64decode(info.memo).hex() == paid.receipt_hash
    check_invariants(db, client, document, second.id)

    # corrected once: a second correction names the first, paid, and needs `again`
    from payouts.export.corrections import AlreadyCorrected, list_corrections

    with Session(db) as session:
        (listed,) = list_corrections(session, receipt_hash=node_10.receipt_hash)
    assert listed.state == f"paid on {paid.paid_at:%Y-%m-%d}" and listed.amount_tft_units == 5 * 10**7
    with session_scope(db) as session, pytest.raises(AlreadyCorrected, match="5.0000000 TFT .*paid on"):
        record_correction(session, node_10.receipt_hash, 10**7, "once more")
    with session_scope(db) as session:
        again = record_correction(session, node_10.receipt_hash, 10**7, "once more", again=True, recorded_by="ana")
    with Session(db) as session:
        states = [(c.payment_id, c.recorded_by, c.state) for c in list_corrections(session)]
    assert states == [
        (correction.payment_id, "", listed.state),
        (again.payment_id, "ana", "recorded: joins the next run"),
    ]
