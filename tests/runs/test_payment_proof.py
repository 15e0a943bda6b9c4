"""A transaction is given up only on proof (SPEC 10): a lookup by hash that answers 404 as of a
ledger at or past the transaction's ledger bound, from a Horizon whose history reaches back to
the ledger it was built at. Tried against the sandbox the way the world breaks it: a lagging
replica behind a load balancer, a Horizon that trims history, a stranger using our sequence."""

from __future__ import annotations

import threading
import time

import orjson
from sqlmodel import Session, select
from stellar_sdk import Account, Keypair, TransactionBuilder

from payouts.ledger.models import LedgerEvent, Payment, StellarTransaction, TransactionHash
from payouts.ledger.states import PaymentStatus, RunStatus, TransactionStatus
from payouts.sandbox.faults import FaultSpec
from tests.support.payments import chain_payments, check_invariants


def _events(db, name: str) -> list[LedgerEvent]:
    with Session(db) as session:
        return list(session.exec(select(LedgerEvent).where(LedgerEvent.event == name)).all())


def test_every_transaction_carries_time_and_ledger_bounds(paying):
    sandbox, _document, _db, run_id, engine = paying(ledger_close_s=0.1)
    engine.start(run_id)
    tx = next(iter(engine.build_many(run_id, [engine.keys.channel_accounts[0]])), None)
    assert tx is not None
    # the bounds as the network reads them from the signed bytes
    record = sandbox.chain.decode(tx.envelope_xdr).transaction.preconditions
    assert record.time_bounds.max_time == tx.max_time > 0
    assert record.ledger_bounds.max_ledger == tx.max_ledger
    # 30 s at 0.1 s a ledger, counted from the ledger the network was at
    assert tx.max_ledger == tx.built_ledger + 300
    # the ledger the network was at when built: behind the latest by no more than the time since
    # (the sandbox closes ten a second; a loaded machine takes a few seconds to get here)
    assert 0 <= sandbox.chain.latest.sequence - tx.built_ledger <= 50


def test_a_lagging_replica_that_answers_504_to_landed_submissions_pays_no_receipt_twice(paying):
    """Horizon behind a load balancer: every submission lands but is answered 504, and lookups
    by hash and accounts come from a replica 2 s behind. Before proofs were required, 6 to 20
    of 25 receipts were paid twice: "not found" and "sequence moved on" came from reads that
    disagreed."""
    sandbox, document, db, run_id, engine = paying(ledger_close_s=0.1, channels=3)
    sandbox.view.set_lag(2.0)
    report = engine.pay(run_id)
    assert report.status == RunStatus.PAID
    assert report.unknown_outcomes > 0  # the fault was there: landed submissions answered 504
    payments = check_invariants(db, engine.client, document, run_id)
    assert sum(p.status == "paid" for p in payments) == 8
    # nothing was given up: every transaction that was sent landed, once
    assert report.rebuilt == 0 and not _events(db, "transaction.dead")


def test_a_lagging_replica_with_a_second_engine_reading_stale_accounts_pays_nothing_twice(paying):
    """The same replica, and the engine's own memory of sequence numbers lost between calls
    (a worker restarted mid-run): every new engine reads the stale account sequence."""
    from payouts.runs.payment import PaymentEngine

    sandbox, document, db, run_id, engine = paying(ledger_close_s=0.1, tx_timeout_s=3, channels=2)
    sandbox.view.set_lag(1.5)
    deadline = time.monotonic() + 120
    report = None
    while time.monotonic() < deadline:
        fresh = PaymentEngine(engine.units, engine.client, engine.keys, engine.config)
        report = fresh.pay(run_id, budget_s=0.3)
        if report.status != RunStatus.PAYING:
            break
    assert report is not None and report.status == RunStatus.PAID
    payments = check_invariants(db, engine.client, document, run_id)
    assert sum(p.status == "paid" for p in payments) == 8


def test_a_horizon_whose_history_starts_after_the_transaction_was_built_makes_the_engine_wait(paying):
    sandbox, document, db, run_id, engine = paying(ledger_close_s=0.1, tx_timeout_s=2, channels=1)
    engine.start(run_id)
    assert engine.claim(run_id) is None  # the period's claim first: this engine keeps it
    sandbox.faults.spec = FaultSpec.parse("504_without_apply=1")  # nothing sent reaches the queue
    built = sandbox.chain.latest.sequence
    # a Horizon keeping only recent history: it starts after anything this test builds
    sandbox.view.history_floor = built + 1000
    outcome: dict = {}
    paying_thread = threading.Thread(target=lambda: outcome.setdefault("report", engine.pay(run_id)))
    paying_thread.start()
    # well past the 20-ledger bound: a "not found" that now proves nothing, since the history
    # Horizon still has starts after the transaction was built
    deadline = time.monotonic() + 60
    while True:  # until the ledgers are well past the transaction's bound, however slow they close
        time.sleep(0.2)
        with Session(db) as session:
            live = session.exec(select(StellarTransaction).where(StellarTransaction.purpose == "payment")).all()
        past = bool(live) and live[0].max_ledger is not None and live[0].max_ledger + 10 < sandbox.chain.latest.sequence
        if past or time.monotonic() > deadline:
            break
    assert len(live) == 1 and live[0].status == TransactionStatus.SUBMITTED
    assert live[0].max_ledger < sandbox.chain.latest.sequence
    assert live[0].built_ledger < sandbox.view.elder_ledger()
    assert not _events(db, "transaction.dead") and not _events(db, "payment.rebuild")
    # a Horizon with the full history again: the proof holds, the payments are rebuilt and paid
    sandbox.faults.spec = FaultSpec.parse(None)
    sandbox.view.history_floor = 0
    paying_thread.join(60)
    assert not paying_thread.is_alive()
    assert outcome["report"].status == RunStatus.PAID
    assert len(_events(db, "transaction.dead")) == 1
    payments = check_invariants(db, engine.client, document, run_id)
    assert sum(p.status == "paid" for p in payments) == 8


def test_a_sequence_number_used_by_a_transaction_this_ledger_did_not_build_stops_the_run(paying, tmp_path):
    sandbox, document, db, run_id, engine = paying(ledger_close_s=0.1, tx_timeout_s=2, channels=1)
    engine.start(run_id)
    channel = document["channels"][0]
    sandbox.faults.spec = FaultSpec.parse("504_without_apply=1")
    ours = next(iter(engine.build_many(run_id, [channel["public_key"]])), None)
    assert ours is not None
    # someone else, holding the channel key (a copied ledger's payer), uses the same number
    sandbox.faults.spec = FaultSpec.parse(None)
    stranger = Keypair.from_secret(channel["secret"])
    envelope = (
        TransactionBuilder(Account(stranger.public_key, ours.sequence - 1), document["network_passphrase"], 100)
        .append_set_options_op(home_domain="elsewhere.example")
        .set_timeout(60)
        .build()
    )
    envelope.sign(stranger)
    assert engine.client.submit(envelope.to_xdr()).outcome == "success"

    report = engine.pay(run_id)
    assert report.status == RunStatus.STOPPED
    assert f"sequence {ours.sequence}" in report.reason and "did not build" in report.reason
    with Session(db) as session:
        payment = session.exec(select(Payment).where(Payment.transaction_id == ours.id)).one()
        tx = session.get(StellarTransaction, ours.id)
    # never a reason to rebuild: the payment stays with its transaction for an operator
    assert payment.status == PaymentStatus.SUBMITTED and tx.status == TransactionStatus.SUBMITTED
    assert not _events(db, "payment.rebuild")
    assert chain_payments(engine.client, document) == []  # nothing was paid, nothing twice


def test_a_fee_bumped_transaction_that_landed_under_an_earlier_bump_is_ours(paying):
    """Two bumps were recorded; the first one is what landed. Its hash is ours: confirmed, no
    rebuild, reconciliation clean."""
    from payouts.ledger.db import session_scope
    from payouts.runs.reconcile import reconcile_run
    from payouts.stellar.horizon import Outcome, SubmitResult

    sandbox, document, db, run_id, engine = paying(ledger_close_s=0.1, channels=1, max_fee_stroops=1000)
    engine.start(run_id)
    sandbox.faults.spec = FaultSpec.parse("504_without_apply=1")
    tx = next(iter(engine.build_many(run_id, [document["channels"][0]["public_key"]])), None)
    assert tx is not None
    with session_scope(db) as session:
        first = engine._bump_fee(session, session.get(StellarTransaction, tx.id))
    with session_scope(db) as session:
        second = engine._bump_fee(session, session.get(StellarTransaction, tx.id))
    assert first and second and first != second
    sandbox.faults.spec = FaultSpec.parse(None)
    landed = engine.client.submit(first)
    assert landed.outcome == Outcome.SUCCESS
    with Session(db) as session:
        hashes = {h.tx_hash: h.kind for h in session.exec(select(TransactionHash)).all()}
        recorded = session.get(StellarTransaction, tx.id)
    assert landed.tx_hash in hashes and hashes[landed.tx_hash] == "fee_bump"
    assert recorded.fee_bump_hash != landed.tx_hash  # the row names the later bump
    # the engine only knows it sent the second bump and got no answer
    answers = [(tx.id, SubmitResult(Outcome.UNKNOWN, reason="timed out"))]
    verdict = engine.resolve_many(run_id, answers, _report(run_id))[tx.id][0]
    assert verdict == "landed"
    with Session(db) as session:
        recorded = session.get(StellarTransaction, tx.id)
        payment = session.exec(select(Payment).where(Payment.transaction_id == tx.id)).one()
    assert recorded.status == TransactionStatus.CONFIRMED and recorded.fee_bump_hash == landed.tx_hash
    assert payment.status == PaymentStatus.PAID and payment.tx_hash == landed.tx_hash
    assert not _events(db, "payment.rebuild")
    report = engine.pay(run_id)
    assert report.status == RunStatus.PAID
    check_invariants(db, engine.client, document, run_id)
    with Session(db) as session:
        from payouts.ledger.models import Run

        result = reconcile_run(
            session,
            session.get(Run, run_id),
            engine.client,
            document["payout"]["public_key"],
            document["asset"]["code"],
            document["asset"]["issuer"],
        )
    assert result.clean, (result.differences, result.unknown_on_chain)


def _report(run_id: int):
    from payouts.runs.payment import PayReport

    return PayReport(run_id=run_id, status=RunStatus.PAYING)


def test_the_sandbox_names_the_ledger_each_answer_is_as_of(paying):
    sandbox, _document, _db, _run_id, engine = paying(fund=False)
    sandbox.view.set_lag(1.0)
    time.sleep(1.2)
    lookup = engine.client.lookup("0" * 64)
    assert lookup.info is None and lookup.latest_ledger is not None
    assert lookup.latest_ledger < sandbox.chain.latest.sequence  # the replica's, not the chain's
    assert orjson.loads(orjson.dumps({"elder": engine.client.history_elder_ledger()}))["elder"] >= 1
