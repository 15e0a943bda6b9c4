"""Claimable balances under attack (chain truth: the sandbox over HTTP): a reclaim run twice
moves nothing twice; a ledger row edited between pay and reconcile (its balance id or amount) is
a named mismatch; a payment anyone sends the payout account settles no balance."""

from __future__ import annotations

from sqlmodel import Session, col, select
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Asset as SdkAsset
from stellar_sdk import Keypair, TransactionBuilder

from payouts.ledger.db import session_scope
from payouts.ledger.kinds import TransactionPurpose
from payouts.ledger.models import LedgerEvent, Payment, Run, StellarTransaction
from payouts.ledger.outstanding import outstanding
from payouts.ledger.states import PaymentStatus, RunStatus
from payouts.money import format_tft
from payouts.runs.claimable import NOT_CLAIMED, reclaim_run, settle_balances
from payouts.runs.reconcile import reconcile_run, record_reconciliation
from tests.runs.conftest import paying  # noqa: F401
from tests.runs.test_claimable import _approve, _engine, _farmer, _pass_the_window, _payments_to


def _paid_with_balances(paying):  # noqa: F811
    sandbox, document, db, run_id, fixture_engine = paying(approve=False)
    approver = Keypair.random()
    engine = _engine(fixture_engine, approver, claimable_for_no_trustline=True)
    _approve(db, run_id, engine, approver)
    report = engine.pay(run_id)
    assert report.status == RunStatus.PAID and report.claimable == 2
    sent = _payments_to(db, run_id, _farmer(document)["public_key"])
    assert len(sent) == 2 and {p.status for p in sent} == {PaymentStatus.CLAIMABLE}
    return sandbox, document, db, run_id, engine, sent


def _tft(engine, document, account: str) -> int:
    line = engine.client.account(account).trustline(document["asset"]["code"], document["asset"]["issuer"])
    return line.balance_units if line is not None else 0


def _reconcile(db, run_id: int, engine, document, *, record: bool = False):
    with session_scope(db) as session:
        run = session.get(Run, run_id)
        result = reconcile_run(
            session,
            run,
            engine.client,
            engine.keys.payout_account,
            document["asset"]["code"],
            document["asset"]["issuer"],
        )
        if record:
            record_reconciliation(session, run, result)
    return result


def _edit(db, payment_id: int, **values) -> dict:
    """Set the row's fields; returns what they were."""
    with session_scope(db) as session:
        row = session.get(Payment, payment_id)
        before = {key: getattr(row, key) for key in values}
        for key, value in values.items():
            setattr(row, key, value)
        session.add(row)
    return before


def test_a_reclaim_run_twice_moves_nothing_twice(paying):  # noqa: F811
    sandbox, document, db, run_id, engine, sent = _paid_with_balances(paying)
    payout = engine.keys.payout_account
    _pass_the_window(sandbox, engine.client, max(p.claimable_until for p in sent))
    first = reclaim_run(engine.units, run_id, engine.client, engine.keys, engine.config)
    assert (first.state, first.reclaimed) == ("reclaimed", 2), first
    balance = _tft(engine, document, payout)
    sequence = engine.client.account(payout).sequence
    with Session(db) as session:
        events = len(session.exec(select(LedgerEvent)).all())

    second = reclaim_run(engine.units, run_id, engine.client, engine.keys, engine.config)
    assert (second.state, second.reclaimed, second.tx_hash) == ("nothing due", 0, None), second
    assert f"run {run_id}: no claimable balance is past its window" in second.message
    # nothing sent, nothing recorded, nothing owed twice
    assert _tft(engine, document, payout) == balance
    assert engine.client.account(payout).sequence == sequence
    with Session(db) as session:
        reclaims = session.exec(
            select(StellarTransaction).where(
                StellarTransaction.run_id == run_id, StellarTransaction.purpose == TransactionPurpose.RECLAIM
            )
        ).all()
        assert len(reclaims) == 1 and reclaims[0].tx_hash == first.tx_hash
        assert len(session.exec(select(LedgerEvent)).all()) == events
        rows = [session.get(Payment, p.id) for p in sent]
        owed = [e for e in outstanding(session) if e.destination == sent[0].destination]
    assert {(p.status, p.hold_reason) for p in rows} == {(PaymentStatus.HELD, NOT_CLAIMED)}
    assert sorted(e.amount_tft_units for e in owed) == sorted(p.amount_tft_units for p in sent)


def test_a_balance_row_edited_between_pay_and_reconcile_is_a_named_mismatch(paying):  # noqa: F811
    _sandbox, document, db, run_id, engine, sent = _paid_with_balances(paying)
    first, other = sent
    assert _reconcile(db, run_id, engine, document).clean

    # the amount, one unit more than the balance holds
    before = _edit(db, first.id, amount_tft_units=first.amount_tft_units + 1)
    result = _reconcile(db, run_id, engine, document)
    assert not result.clean
    assert any(f"payment {first.id}: its claimable balance differs from the ledger" in d for d in result.differences)
    _edit(db, first.id, **before)

    # the balance id, pointed at the other payment's balance (one balance, two receipts)
    before = _edit(db, first.id, claimable_balance_id=other.claimable_balance_id)
    result = _reconcile(db, run_id, engine, document)
    assert not result.clean
    assert any(
        f"payment {first.id}: its claimable balance {other.claimable_balance_id} is recorded for payments" in d
        for d in result.differences
    ), result.differences
    with session_scope(db) as session:
        settled = settle_balances(session, engine.client, engine.keys.payout_account, run_id=run_id)
    assert settled.claimed == settled.reclaimed == 0
    assert any(f"payment {first.id}" in d for d in settled.differences), settled.differences
    _edit(db, first.id, **before)

    # the balance id, pointed at a balance that does not exist
    bogus = "00000000" + "ab" * 32
    before = _edit(db, first.id, claimable_balance_id=bogus)
    result = _reconcile(db, run_id, engine, document, record=True)
    assert any(f"payment {first.id}: its claimable balance {bogus} is not on chain" in d for d in result.differences)
    with Session(db) as session:
        run = session.get(Run, run_id)
        assert run.status == RunStatus.STOPPED and f"payment {first.id}" in run.status_reason
        assert {session.get(Payment, p.id).status for p in sent} == {PaymentStatus.CLAIMABLE}


def test_a_payment_anyone_sends_the_payout_account_settles_no_balance(paying):  # noqa: F811
    _sandbox, document, db, run_id, engine, sent = _paid_with_balances(paying)
    payout = engine.keys.payout_account
    # another farmer (paid this run) sends the payout account a balance's amount, memo its receipt
    stranger = Keypair.from_secret(next(f for f in document["farmers"] if f["trustline"])["secret"])
    asset = SdkAsset(document["asset"]["code"], document["asset"]["issuer"])
    amount = min(sent[0].amount_tft_units, _tft(engine, document, stranger.public_key))
    assert amount > 0
    for keypair, build in (
        (
            stranger,
            lambda b: b.add_hash_memo(bytes.fromhex(sent[0].receipt_hash)).append_payment_op(
                payout, asset, format_tft(amount)
            ),
        ),
    ):
        account = engine.client.account(keypair.public_key)
        builder = TransactionBuilder(
            SdkAccount(keypair.public_key, account.sequence), document["network_passphrase"], 100
        ).set_timeout(120)
        build(builder)
        envelope = builder.build()
        envelope.sign(keypair)
        assert engine.client.submit(envelope.to_xdr()).outcome == "success"

    with session_scope(db) as session:
        settled = settle_balances(session, engine.client, payout)
    assert (settled.claimed, settled.reclaimed, settled.live, settled.differences) == (0, 0, 2, [])
    with Session(db) as session:
        rows = session.exec(select(Payment).where(col(Payment.id).in_([p.id for p in sent]))).all()
    assert {p.status for p in rows} == {PaymentStatus.CLAIMABLE}
    result = _reconcile(db, run_id, engine, document, record=True)
    assert result.clean, (result.differences, result.unknown_on_chain)
    assert result.paid_in_ledger == result.paid_on_chain
    with Session(db) as session:
        assert session.get(Run, run_id).status == RunStatus.RECONCILED
