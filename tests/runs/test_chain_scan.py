"""The chain is scanned before anything is sent (SPEC 10): a ledger restored from a backup
taken before `pay`, dust with a receipt hash as memo, a transfer nobody recorded."""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import orjson
import psycopg
from sqlalchemy.engine import make_url
from sqlmodel import Session, select
from stellar_sdk import Account, Asset, Keypair, TransactionBuilder

from payouts.ledger.db import backup, make_engine
from payouts.ledger.models import ChainCursor, LedgerEvent, Payment
from payouts.ledger.states import PaymentStatus, RunStatus
from payouts.ledger.unit_of_work import UnitsOfWork
from payouts.runs.payment import PaymentEngine, RunStopped
from payouts.stellar.horizon import HorizonClient
from tests.support.network_time import takeover_waits_passed
from tests.support.payments import chain_payments, check_invariants


def restored_copy(url: str, tmp_path: Path) -> str:
    """`payouts db backup` now; returns the URL of a ledger restored from it (as RUNBOOK.md)."""
    out = tmp_path / f"ledger-{uuid.uuid4().hex[:6]}.backup"
    backup(url, out)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"sqlite:///{out}"
    name = f"restored_{uuid.uuid4().hex[:10]}"
    admin = f"host={parsed.host} port={parsed.port} user={parsed.username} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    pg_restore = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_restore"))))
    subprocess.run(
        [
            str(pg_restore),
            "--no-owner",
            "-h",
            parsed.host,
            "-p",
            str(parsed.port),
            "-U",
            parsed.username,
            "-d",
            name,
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return parsed.set(database=name).render_as_string(hide_password=False)


def _receipts_on_chain(client: HorizonClient, document: dict) -> Counter:
    """(destination, amount) pairs paid from the payout account, counted on chain."""
    return Counter((r["to"], r["amount"]) for r in chain_payments(client, document))


def _paid(url: str, run_id: int) -> list[Payment]:
    with Session(make_engine(url)) as session:
        return list(
            session.exec(select(Payment).where(Payment.run_id == run_id, Payment.status == PaymentStatus.PAID)).all()
        )


def _restore_then_pay_again(paying, tmp_path, ledger_url, **options):
    # the restored ledger takes the period's claim over: it waits out one transaction timeout
    sandbox, document, _db, run_id, engine = paying(**{"tx_timeout_s": 5, **options})
    before_pay = restored_copy(ledger_url, tmp_path)
    first = engine.pay(run_id)
    assert first.status == RunStatus.PAID and first.paid == 8
    paid_first = _paid(ledger_url, run_id)
    on_chain = _receipts_on_chain(engine.client, document)
    assert sum(on_chain.values()) == 8

    # the operator restores the backup taken before `pay`, and the run is paid again
    restored = PaymentEngine(UnitsOfWork(make_engine(before_pay)), engine.client, engine.keys, engine.config)
    with takeover_waits_passed(sandbox, before_pay) as waited_for:
        again = restored.pay(run_id)
    assert len(waited_for) == 1, waited_for
    assert again.status == RunStatus.PAID
    assert again.adopted == 8 and again.transactions == 0  # nothing sent: the chain said it was paid
    assert _receipts_on_chain(engine.client, document) == on_chain
    paid_again = _paid(before_pay, run_id)
    assert sorted((p.receipt_hash, p.tx_hash) for p in paid_again) == sorted(
        (p.receipt_hash, p.tx_hash) for p in paid_first
    )
    with Session(make_engine(before_pay)) as session:
        adopted = session.exec(select(LedgerEvent).where(LedgerEvent.event == "payment.adopted")).all()
        cursors = session.exec(select(ChainCursor)).all()
    chain_hashes = {r["transaction_hash"] for r in chain_payments(engine.client, document)}
    assert adopted and all(
        orjson.loads(e.detail_json)["tx_hash"] in chain_hashes for e in adopted
    )  # names the chain tx
    assert cursors  # later scans are incremental
    return sandbox, document, run_id, restored


def test_a_restored_backup_taken_before_pay_pays_nothing_twice(paying, tmp_path, ledger_url):
    _restore_then_pay_again(paying, tmp_path, ledger_url)


def test_batch_payments_are_adopted_after_a_restore_by_their_memo_root(paying, tmp_path, ledger_url):
    _restore_then_pay_again(paying, tmp_path, ledger_url, memo_mode="batch", channels=1, batch_size=3)


def test_dust_with_a_receipt_hash_as_memo_sent_to_the_payout_account_changes_nothing(paying):
    _sandbox, document, db, run_id, engine = paying()
    with Session(db) as session:
        target = session.exec(select(Payment).where(Payment.run_id == run_id).order_by(Payment.id)).first()
    # anyone can send the payout account a payment whose memo is a receipt hash
    stranger = Keypair.from_secret(document["treasury"]["secret"])
    account = engine.client.account(stranger.public_key)
    dust = (
        TransactionBuilder(Account(stranger.public_key, account.sequence), document["network_passphrase"], 100)
        .append_payment_op(document["payout"]["public_key"], Asset.native(), "0.0000001")
        .append_payment_op(
            document["payout"]["public_key"], Asset(document["asset"]["code"], document["asset"]["issuer"]), "0.0000001"
        )
        .add_hash_memo(bytes.fromhex(target.receipt_hash))
        .set_timeout(60)
        .build()
    )
    dust.sign(stranger)
    assert engine.client.submit(dust.to_xdr()).outcome == "success"
    report = engine.pay(run_id)
    assert report.status == RunStatus.PAID and report.adopted == 0 and report.paid == 8
    payments = check_invariants(db, engine.client, document, run_id)
    assert sum(p.status == "paid" for p in payments) == 8
    paid_target = next(p for p in payments if p.id == target.id)
    assert paid_target.status == "paid" and paid_target.tx_hash != dust.hash_hex()


def test_a_transfer_from_the_payout_account_nobody_recorded_stops_the_run_until_accepted(paying):
    _sandbox, document, db, run_id, engine = paying()
    payout = Keypair.from_secret(document["payout"]["secret"])
    account = engine.client.account(payout.public_key)
    transfer = (
        TransactionBuilder(Account(payout.public_key, account.sequence), document["network_passphrase"], 100)
        .append_payment_op(
            document["treasury"]["public_key"], Asset(document["asset"]["code"], document["asset"]["issuer"]), "1"
        )
        .set_timeout(60)
        .build()
    )
    transfer.sign(payout)
    assert engine.client.submit(transfer.to_xdr()).outcome == "success"

    report = engine.pay(run_id)
    assert report.status == RunStatus.STOPPED and transfer.hash_hex() in report.reason
    assert (
        report.transactions == 0
        and chain_payments(engine.client, document)[0]["transaction_hash"] == transfer.hash_hex()
    )
    try:
        engine.recover(run_id)
        raise AssertionError("an unexplained transfer must not be passed over")
    except RunStopped as exc:
        assert transfer.hash_hex() in str(exc)
    try:
        engine.recover(run_id, accept="nobody")
        raise AssertionError("an acceptance names who and why")
    except Exception as exc:  # noqa: BLE001 - RunsError: checked by its message
        assert "who, why" in str(exc)
    status, result = engine.recover(run_id, accept="ana, returned the float to the treasury (drill)")
    assert status == RunStatus.PAYING and result.unmatched_hashes == [transfer.hash_hex()]
    with Session(db) as session:
        accepted = session.exec(select(LedgerEvent).where(LedgerEvent.event == "chain.accepted")).one()
    assert orjson.loads(accepted.detail_json)["accepted_by"].startswith("ana,")
    report = engine.pay(run_id)
    assert report.status == RunStatus.PAID and report.paid == 8
    check_invariants(db, engine.client, document, run_id, outside=frozenset({transfer.hash_hex()}))


def test_memo_of_chain_records_is_read_as_horizon_sends_it():
    # the scan reads hash memos as Horizon sends them: base64 of the 32 bytes
    from payouts.runs.payment.scan import _memo_hex

    raw = bytes(range(32))
    assert _memo_hex({"memo_type": "hash", "memo": base64.b64encode(raw).decode()}) == raw.hex()
    assert _memo_hex({"memo_type": "text", "memo": "hello"}) is None


def test_a_batch_adopts_the_receipt_its_memo_root_names_among_look_alikes(paying):
    """Two receipts with the same destination and amount; a batch on chain (a restored
    ledger's lost one) paid the second: the memo root says which, and only it is adopted."""
    from payouts.money import format_tft
    from payouts.stellar.merkle import merkle_root

    _sandbox, document, db, run_id, engine = paying(memo_mode="batch", channels=1)
    engine.start(run_id)
    with Session(db) as session:
        pending = session.exec(
            select(Payment)
            .where(Payment.run_id == run_id, Payment.status == PaymentStatus.PENDING)
            .order_by(Payment.id)
        ).all()
    groups: dict = {}
    for p in pending:
        groups.setdefault((p.destination, p.amount_tft_units), []).append(p)
    first, second = next(g for g in groups.values() if len(g) >= 2)[:2]
    payout = Keypair.from_secret(document["payout"]["secret"])
    asset = Asset(document["asset"]["code"], document["asset"]["issuer"])
    account = engine.client.account(payout.public_key)
    batch = (
        TransactionBuilder(Account(payout.public_key, account.sequence), document["network_passphrase"], 100)
        .append_payment_op(second.destination, asset, format_tft(second.amount_tft_units))
        .add_hash_memo(merkle_root([second.receipt_hash]))
        .set_timeout(60)
        .build()
    )
    batch.sign(payout)
    assert engine.client.submit(batch.to_xdr()).outcome == "success"
    report = engine.pay(run_id)
    assert report.status == RunStatus.PAID and report.adopted == 1
    with Session(db) as session:
        adopted = session.get(Payment, second.id)
        look_alike = session.get(Payment, first.id)
    assert adopted.status == PaymentStatus.PAID and adopted.tx_hash == batch.hash_hex()
    assert look_alike.status == PaymentStatus.PAID and look_alike.tx_hash != batch.hash_hex()
    paid_to = Counter((r["to"], r["amount"]) for r in chain_payments(engine.client, document))
    assert paid_to[(first.destination, format_tft(first.amount_tft_units))] == 2  # the two receipts, once each
