"""Paying a run on the sandbox network: exactly once, with faults, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest
from sqlmodel import Session, select
from stellar_sdk import Keypair

from payouts.ledger.db import session_scope
from payouts.ledger.models import LedgerEvent, Payment, Run, StellarTransaction
from payouts.ledger.states import RunStatus, TransactionStatus
from payouts.runs.approvals import NotApproved
from payouts.runs.monthly import continue_run
from payouts.runs.payment import PaymentEngine, RunAlreadyPaid, RunNotPayable, RunStopped
from payouts.sandbox.faults import SubmitFault
from payouts.stellar.horizon import HorizonClient
from tests.support.payments import (
    chain_payments as _chain_payments,
)
from tests.support.payments import (
    check_invariants,
)
from tests.support.payments import (
    fund_payout as _fund_payout,
)


def test_an_approved_run_is_paid_once_and_no_trustline_is_held(paying):
    _sandbox, document, db, run_id, engine = paying()
    report = engine.pay(run_id)
    assert report.status == RunStatus.PAID
    payments = check_invariants(db, engine.client, document, run_id)
    statuses = Counter((p.status, p.hold_reason) for p in payments)
    assert statuses == {("paid", ""): 8, ("held", "no_trustline"): 2}
    assert report.paid == 8 and report.transactions == 8
    # more than one transaction per ledger thanks to the channels
    assert len(report.ledgers) < report.transactions
    # paying again is "already done" and sends nothing
    with pytest.raises(RunAlreadyPaid):
        engine.pay(run_id)
    check_invariants(db, engine.client, document, run_id)


def test_payments_survive_timeouts_and_dropped_connections(paying):
    _sandbox, document, db, run_id, engine = paying(
        faults="504_after_apply=0.3,drop_after_apply=0.2,504_without_apply=0.2"
    )
    report = engine.pay(run_id)
    assert report.status == RunStatus.PAID
    assert report.unknown_outcomes > 0
    payments = check_invariants(db, engine.client, document, run_id)
    assert sum(p.status == "paid" for p in payments) == 8


def test_an_underfunded_payout_account_stops_the_run_before_anything_is_sent(paying):
    _sandbox, document, db, run_id, engine = paying(fund=False)
    with pytest.raises(RunStopped, match="short by"):
        engine.pay(run_id)
    with Session(db) as session:
        run = session.get(Run, run_id)
        assert run.status == RunStatus.STOPPED and "short by" in run.status_reason
        assert session.exec(select(StellarTransaction)).all() == []
    assert _chain_payments(engine.client, document) == []
    # a stopped run waits for an operator: paying again is refused, funding alone changes nothing
    _fund_payout(engine.client, document, 10**6 * 10**7)
    with pytest.raises(RunNotPayable, match="payouts continue"):
        engine.pay(run_id)
    with session_scope(db) as session:
        assert continue_run(session, session.get(Run, run_id)) == RunStatus.APPROVED  # where it stopped
    report = engine.pay(run_id)
    assert report.status == RunStatus.PAID
    check_invariants(db, engine.client, document, run_id)


def test_an_unapproved_run_is_not_paid(paying):
    _sandbox, document, _db, run_id, engine = paying(approve=False)
    with pytest.raises(RunNotPayable, match="only an approved run"):
        engine.pay(run_id)
    assert _chain_payments(engine.client, document) == []


def test_an_approval_by_a_key_no_longer_configured_does_not_count(paying):
    import dataclasses

    _sandbox, document, _db, run_id, engine = paying()
    engine.config = dataclasses.replace(engine.config, approvers=(Keypair.random().public_key,))
    with pytest.raises(NotApproved):
        engine.pay(run_id)
    assert _chain_payments(engine.client, document) == []


def test_an_edited_payment_row_stops_the_run(paying):
    _sandbox, document, db, run_id, engine = paying()
    from sqlalchemy import update

    thief = Keypair.random().public_key
    with session_scope(db) as session:
        session.execute(
            update(Payment).where(Payment.run_id == run_id, Payment.node_id == 1000).values(destination=thief)
        )
    with pytest.raises(RunStopped, match="destination differs"):
        engine.pay(run_id)
    assert _chain_payments(engine.client, document) == []


def test_batch_mode_uses_merkle_memos(paying):
    _sandbox, _document, db, run_id, engine = paying(memo_mode="batch", channels=1)
    report = engine.pay(run_id)
    assert report.status == RunStatus.PAID
    with Session(db) as session:
        paid = session.exec(select(Payment).where(Payment.status == "paid")).all()
        txs = session.exec(select(StellarTransaction)).all()
    assert len(paid) == 8
    from payouts.stellar.merkle import merkle_root

    confirmed = [t for t in txs if t.status == "confirmed" and t.purpose == "payment"]
    for tx in confirmed:
        hashes = [p.receipt_hash for p in paid if p.tx_hash == tx.tx_hash]
        assert tx.memo_hash == merkle_root(hashes).hex()
    assert len(confirmed) < len(paid)


@pytest.mark.parametrize("faults", ["congestion=0.4", "delay=0.5:3", "504_without_apply=0.5"])
def test_congestion_and_delays_only_slow_the_run_down(paying, faults):
    _sandbox, document, db, run_id, engine = paying(faults=faults)
    report = engine.pay(run_id)
    assert report.status == RunStatus.PAID
    payments = check_invariants(db, engine.client, document, run_id)
    assert sum(p.status == "paid" for p in payments) == 8


def test_congestion_raises_the_fee_with_a_fee_bump_within_the_cap(paying):
    # two refusals, then an open queue, and a ledger bound told in the sandbox's own ledgers
    # (0.1 s each: 300 ledgers for the 30 s timeout), so a bumped transaction lands before its
    # bound however slowly a loaded machine gets to it
    sandbox, document, db, run_id, engine = paying(faults="congestion=0", max_fee_stroops=400, ledger_close_s=0.1)
    sandbox.faults.force(SubmitFault.congestion, times=2)
    report = engine.pay(run_id)
    assert report.status == RunStatus.PAID
    payments = check_invariants(db, engine.client, document, run_id)
    with Session(db) as session:
        txs = session.exec(select(StellarTransaction)).all()
        bumps = session.exec(select(LedgerEvent).where(LedgerEvent.event == "transaction.fee_bumped")).all()
    assert bumps, "a congested network never got a higher bid"
    for event in bumps:
        detail = orjson.loads(event.detail_json)
        assert detail["previous_fee_per_op_stroops"] < detail["fee_per_op_stroops"] <= 400
    # a bumped transaction may still expire past its ledger bound (then rebuilt); those that
    # landed are on chain under their fee bump's hash
    bumped = [t for t in txs if t.fee_bump_hash and t.status == TransactionStatus.CONFIRMED]
    assert bumped
    for tx in bumped:  # the same transaction, on chain under its fee bump's hash
        info = engine.client.transaction(tx.tx_hash)
        assert info.tx_hash == tx.fee_bump_hash
        assert tx.fee_stroops <= 400 * 2
        assert [p.tx_hash for p in payments if p.transaction_id == tx.id] == [tx.fee_bump_hash]


def test_at_the_fee_cap_the_same_bytes_wait_for_room(paying):
    _sandbox, document, db, run_id, engine = paying(faults="congestion=0.5", max_fee_stroops=100)
    report = engine.pay(run_id)
    assert report.status == RunStatus.PAID
    check_invariants(db, engine.client, document, run_id)
    with Session(db) as session:
        assert not session.exec(select(LedgerEvent).where(LedgerEvent.event == "transaction.fee_bumped")).all()
        assert all(t.fee_bump_hash is None for t in session.exec(select(StellarTransaction)).all())


def test_a_sandbox_restart_mid_run_loses_no_payment(paying):
    import threading

    sandbox, document, db, run_id, engine = paying(faults="delay=0.5:5")
    restarting = threading.Timer(0.5, sandbox.restart)
    restarting.start()
    report = engine.pay(run_id)
    restarting.join(30)
    assert sandbox.restarts == 1
    assert report.status == RunStatus.PAID
    payments = check_invariants(db, engine.client, document, run_id)
    assert sum(p.status == "paid" for p in payments) == 8


def test_a_transaction_that_lands_between_its_lookup_and_the_account_read_is_paid_not_rebuilt(paying):
    """An unknown outcome is looked up by hash: not found; then, before the engine reads the
    source account, the ledger including it closes. The account shows the transaction's own
    sequence number used, which proves nothing: rebuilding would pay those farmers twice."""
    sandbox, document, db, run_id, engine = paying(faults="delay=0:50")
    # 50 ledgers of 0.1 s outlast the 2 s submission timeout: 504, and still queued
    sandbox.faults.force(SubmitFault.delay)
    sandbox.faults.force_landing_during_lookup()
    report = engine.pay(run_id)
    # the forced lookup fault fires only if the engine looks the delayed transaction up while it
    # is still queued; either way nothing that landed may be given up or paid again
    assert sandbox.faults.injected["delay"] == 1
    assert report.status == RunStatus.PAID
    payments = check_invariants(db, engine.client, document, run_id)
    assert sum(p.status == "paid" for p in payments) == 8
    assert report.unknown_outcomes == 1
    # the transaction that landed during its lookup is confirmed, never given up: a transaction
    # behind it on the same channel may expire past its ledger bound and be rebuilt, but
    # check_invariants (chain and ledger agree, no receipt paid twice) holds
    with Session(db) as session:
        dead_ids = {
            e.entity_id for e in session.exec(select(LedgerEvent).where(LedgerEvent.event == "transaction.dead"))
        }
        dead = {t.tx_hash for t in session.exec(select(StellarTransaction)).all() if t.id in dead_ids}
    on_chain = {record["transaction_hash"] for record in _chain_payments(engine.client, document)}
    assert not dead & on_chain, "a transaction that landed was given up"


def test_pay_twice_at_once_pays_once(paying):
    import threading

    sandbox, document, db, run_id, engine = paying()
    second = PaymentEngine(engine.units, HorizonClient(sandbox.url, timeout_s=10), engine.keys, engine.config)
    errors = []

    def run(e):
        try:
            e.pay(run_id)
        except Exception as exc:  # noqa: BLE001 - "already paid" or a lost race are fine; checked below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(e,)) for e in (engine, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:  # whatever the race left, one more call finishes the run
        engine.pay(run_id)
    except RunAlreadyPaid:
        pass
    payments = check_invariants(db, engine.client, document, run_id)
    assert sum(p.status == "paid" for p in payments) == 8


def test_a_destination_refused_inside_a_batch_is_held_and_the_rest_rebuilt(paying):
    """Rule 6: per-operation codes hold every failing destination at once; the rest is paid."""
    from stellar_sdk import Account, Asset, TransactionBuilder

    _sandbox, document, db, run_id, engine = paying(memo_mode="batch", channels=1)
    engine.start(run_id)  # preflight passes: every destination can receive now
    leaving = next(f for f in document["farmers"] if f["trustline"])
    farmer = Keypair.from_secret(leaving["secret"])
    account = engine.client.account(farmer.public_key)
    envelope = (
        TransactionBuilder(Account(farmer.public_key, account.sequence), document["network_passphrase"], base_fee=100)
        .append_change_trust_op(Asset(document["asset"]["code"], document["asset"]["issuer"]), limit="0")
        .set_timeout(60)
        .build()
    )
    envelope.sign(farmer)
    assert engine.client.submit(envelope.to_xdr()).outcome == "success"

    report = engine.pay(run_id)
    assert report.status == RunStatus.PAID
    payments = check_invariants(db, engine.client, document, run_id)
    held_now = [p for p in payments if p.destination == farmer.public_key]
    assert held_now and all(p.status == "held" and p.hold_reason == "no_trust" for p in held_now)
    assert sum(p.status == "paid" for p in payments) == 8 - len(held_now)
    with Session(db) as session:
        statuses = sorted(t.status for t in session.exec(select(StellarTransaction)).all())
    assert "failed" in statuses and "confirmed" in statuses


def test_amounts_a_transaction_must_not_carry_are_refused_before_signing():
    from payouts.stellar.build import BuildError, PaymentOp, build_payment_envelope

    common = {
        "network_passphrase": "x",
        "source_account": Keypair.random().public_key,
        "sequence": 2,
        "payout_account": Keypair.random().public_key,
        "asset_code": "TFT",
        "asset_issuer": Keypair.random().public_key,
        "memo_hash": bytes(32),
        "fee_per_operation_stroops": 100,
        "min_time": 0,
        "max_time": 10,
    }
    good = Keypair.random().public_key
    for operations, words in [
        ([PaymentOp(good, 2**63)], "not payable"),
        ([PaymentOp(good, 0)], "not payable"),
        ([PaymentOp(good, -5)], "not payable"),
        ([PaymentOp("GINVALID", 5)], "not a Stellar account"),
        ([PaymentOp(good, 1)] * 101, "1 to 100"),
        ([], "1 to 100"),
    ]:
        with pytest.raises(BuildError, match=words):
            build_payment_envelope(operations=operations, **common)


def test_reconciliation_reads_memos_from_the_joined_payments(paying):
    import httpx
    from sqlalchemy import update

    from payouts.runs.reconcile import reconcile_run

    sandbox, document, db, run_id, engine = paying()
    assert engine.pay(run_id).status == RunStatus.PAID
    requests: list[str] = []

    class Counting(httpx.HTTPTransport):
        def handle_request(self, request):
            requests.append(request.url.path)
            return super().handle_request(request)

    client = HorizonClient(sandbox.url, transport=Counting())
    payout, asset = document["payout"]["public_key"], document["asset"]
    with Session(db) as session:
        result = reconcile_run(session, session.get(Run, run_id), client, payout, asset["code"], asset["issuer"])
    assert result.clean and result.paid_on_chain == result.paid_in_ledger == 8
    assert not [path for path in requests if path.startswith("/transactions/")]
    # an edited memo in the ledger is still caught
    with session_scope(db) as session:
        tx_hash = session.exec(
            select(StellarTransaction.tx_hash)
            .where(StellarTransaction.purpose == "payment", StellarTransaction.status == "confirmed")
            .order_by(StellarTransaction.id)
        ).first()
        session.execute(
            update(StellarTransaction).where(StellarTransaction.tx_hash == tx_hash).values(memo_hash="00" * 32)
        )
    with Session(db) as session:
        result = reconcile_run(session, session.get(Run, run_id), client, payout, asset["code"], asset["issuer"])
    assert not result.clean and any(f"transaction {tx_hash}: memo" in d for d in result.differences)


def test_pause_stops_new_submissions_within_one_cycle_and_resume_finishes(paying):
    from payouts.runs.control import set_paused

    _sandbox, document, db, run_id, engine = paying(channels=1)
    paused_at: list[int] = []

    def pause_after_two(report):
        if report.paid >= 2 and not paused_at:
            with session_scope(db) as session:
                set_paused(session, True, "drill")
            paused_at.append(report.transactions)

    report = engine.pay(run_id, progress=pause_after_two)
    assert report.status == RunStatus.PAYING and report.reason == "paused"
    with Session(db) as session:
        txs = session.exec(select(StellarTransaction).where(StellarTransaction.purpose == "payment")).all()
    assert len(txs) == paused_at[0]  # nothing built after the switch
    assert all(t.status == "confirmed" for t in txs)  # what was in flight was resolved
    again = engine.pay(run_id)  # still paused: builds nothing
    assert again.reason == "paused" and again.transactions == 0
    with session_scope(db) as session:
        set_paused(session, False)
    assert engine.pay(run_id).status == RunStatus.PAID
    check_invariants(db, engine.client, document, run_id)


def test_the_runs_progress_is_counted_from_the_ledger_like_the_engines_report(paying):
    from payouts.runs.progress import run_progress

    sandbox, document, db, run_id, engine = paying()
    sandbox.faults.force(SubmitFault.timeout_after_apply)
    report = engine.pay(run_id)
    assert report.status == RunStatus.PAID and report.unknown_outcomes == 1
    payments = check_invariants(db, engine.client, document, run_id)
    with Session(db) as session:
        progress = run_progress(session, [run_id])[run_id]
    assert (progress.paid_count, progress.held_count, progress.pending_count) == (8, 2, 0)
    assert progress.paid_tft_units == sum(p.amount_tft_units for p in payments if p.status == "paid")
    assert progress.held_tft_units == sum(p.amount_tft_units for p in payments if p.status == "held")
    assert (progress.transactions, progress.unknown_outcomes) == (report.transactions, 1)
