"""One payer per period, fenced on the chain (SPEC 10): the claim data entry on the payout
account, ledger copies and restored backups racing for it, a claim overwritten mid-run, and the
database fingerprint that keeps a copied ledger from paying until `payouts recover`."""

from __future__ import annotations

import base64
import shutil
import sqlite3
import threading
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url
from sqlmodel import Session, select
from stellar_sdk import Account, Keypair, ManageData, TransactionBuilder, TransactionEnvelope

from payouts.ledger.db import make_engine
from payouts.ledger.fingerprint import fingerprint_difference
from payouts.ledger.models import LedgerEvent, PayerClaim, Payment, Run, StellarTransaction
from payouts.ledger.states import PaymentStatus, RunStatus
from payouts.ledger.unit_of_work import UnitsOfWork
from payouts.runs.payment import LedgerMoved, PaymentEngine, RunAlreadyPaid
from payouts.stellar.claim import claim_name
from payouts.stellar.horizon import HorizonClient, SubmitResult
from tests.runs.test_chain_scan import restored_copy
from tests.support.payments import chain_payments, check_invariants

#: a takeover waits out one transaction timeout: short here, so the tests stay quick
TIMEOUT_S = 4


def copied_ledger(url: str, tmp_path: Path, db) -> str:
    """A second ledger holding the same rows: the SQLite file copied, or on PostgreSQL a new
    database made from this one as a template."""
    db.dispose()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        with sqlite3.connect(parsed.database) as conn:  # everything committed into the file itself
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        copy = tmp_path / f"copy-{uuid.uuid4().hex[:6]}.sqlite3"
        shutil.copyfile(parsed.database, copy)
        return f"sqlite:///{copy}"
    name = f"copy_{uuid.uuid4().hex[:10]}"
    admin = f"host={parsed.host} port={parsed.port} user={parsed.username} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        # a template must be idle: close what other engines of this test left open
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (parsed.database,),
        )
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {parsed.database}")
    return parsed.set(database=name).render_as_string(hide_password=False)


def second_ledger(how: str, url: str, tmp_path: Path, db) -> str:
    return copied_ledger(url, tmp_path, db) if how == "copy" else restored_copy(url, tmp_path)


def receipts_paid_on_chain(client: HorizonClient, document: dict) -> Counter:
    """How often each receipt hash (the memo) was paid from the payout account, on chain."""
    return Counter(base64.b64decode(r["transaction"]["memo"]).hex() for r in chain_payments(client, document))


def paid_receipts(db, run_id: int) -> set[str]:
    with Session(db) as session:
        paid = session.exec(select(Payment).where(Payment.run_id == run_id, Payment.status == PaymentStatus.PAID))
        return {p.receipt_hash for p in paid.all()}


def _is_claim(envelope_xdr: str, passphrase: str) -> bool:
    operations = TransactionEnvelope.from_xdr(envelope_xdr, passphrase).transaction.operations
    return len(operations) == 1 and isinstance(operations[0], ManageData)


class ClaimRace(HorizonClient):
    """The real client, whose first claim submission waits for the other payer's: both claims
    are built on the same sequence number of the payout account before either is sent."""

    def __init__(self, url: str, barrier: threading.Barrier, passphrase: str) -> None:
        super().__init__(url, timeout_s=10)
        self.barrier, self.passphrase, self.waited = barrier, passphrase, False

    def submit(self, envelope_xdr: str) -> SubmitResult:
        if not self.waited and _is_claim(envelope_xdr, self.passphrase):
            self.waited = True
            self.barrier.wait()
        return super().submit(envelope_xdr)


@pytest.mark.parametrize("how", ["copy", "backup"])
def test_two_ledgers_racing_for_the_claim_pay_every_receipt_once_and_one_stops(paying, tmp_path, ledger_url, how):
    """Two payers of the same run from a copied ledger (file copy, or a database made from the
    same rows) or from a restored backup: both build their claim on the same sequence number,
    one lands; the other payer stops with the claim message and sends nothing."""
    sandbox, document, db, run_id, engine = paying(tx_timeout_s=TIMEOUT_S, ledger_close_s=0.1)
    other_url = second_ledger(how, ledger_url, tmp_path, db)
    barrier = threading.Barrier(2, timeout=60)
    urls = {"first": ledger_url, "second": other_url}
    reports: dict = {}
    failures: list[BaseException] = []

    def pay(which: str) -> None:
        client = ClaimRace(sandbox.url, barrier, document["network_passphrase"])
        payer = PaymentEngine(UnitsOfWork(make_engine(urls[which])), client, engine.keys, engine.config)
        try:
            reports[which] = payer.pay(run_id)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=pay, args=(which,)) for which in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not failures, failures
    statuses = sorted(r.status for r in reports.values())
    assert statuses == [RunStatus.PAID, RunStatus.STOPPED]
    winner = next(w for w, r in reports.items() if r.status == RunStatus.PAID)
    loser = next(w for w, r in reports.items() if r.status == RunStatus.STOPPED)
    assert "another payer took the claim" in reports[loser].reason and reports[loser].transactions == 0
    # chain truth: every payable receipt paid exactly once
    winner_db = make_engine(urls[winner])
    payable = paid_receipts(winner_db, run_id)
    assert len(payable) == 8
    assert receipts_paid_on_chain(engine.client, document) == Counter(dict.fromkeys(payable, 1))
    check_invariants(winner_db, engine.client, document, run_id)
    with Session(make_engine(urls[loser])) as session:
        run = session.get(Run, run_id)
        sent = session.exec(select(StellarTransaction).where(StellarTransaction.purpose == "payment")).all()
        claims = session.exec(select(PayerClaim)).all()
    assert run is not None and run.status == RunStatus.STOPPED and "another payer took the claim" in run.status_reason
    assert sent == [] and [c.status for c in claims] == ["lost"]
    # on chain, the claim is the winner's
    name = claim_name(document["network_passphrase"], run.period_offset)
    with Session(winner_db) as session:
        ours = session.exec(select(PayerClaim).where(PayerClaim.status == "landed")).one()
    assert engine.client.account(document["payout"]["public_key"]).data[name] == ours.value_b64


def test_a_restored_backup_taken_before_pay_takes_the_claim_over_and_pays_nothing_twice(paying, tmp_path, ledger_url):
    _sandbox, document, db, run_id, engine = paying(tx_timeout_s=TIMEOUT_S, ledger_close_s=0.1)
    before_pay = restored_copy(ledger_url, tmp_path)
    assert engine.pay(run_id).status == RunStatus.PAID
    payable = paid_receipts(db, run_id)
    assert len(payable) == 8
    first_claim = engine._claims[run_id]

    restored_db = make_engine(before_pay)
    restored = PaymentEngine(UnitsOfWork(restored_db), engine.client, engine.keys, engine.config)
    again = restored.pay(run_id)
    assert again.status == RunStatus.PAID and again.transactions == 0 and again.adopted == len(payable)
    assert receipts_paid_on_chain(engine.client, document) == Counter(dict.fromkeys(payable, 1))
    # the restored ledger did not know the claim on chain: it took it over and waited a timeout
    took_over = restored._claims[run_id]
    assert took_over.value_b64 != first_claim.value_b64
    with Session(restored_db) as session:
        event = session.exec(select(LedgerEvent).where(LedgerEvent.event == "claim.taken_over")).one()
        scanned_after = session.exec(select(LedgerEvent).where(LedgerEvent.event == "payment.adopted")).first()
    assert scanned_after is not None and scanned_after.occurred_at >= event.occurred_at
    assert engine.client.latest_ledger().closed_at.timestamp() > took_over.closed_at_s + TIMEOUT_S
    check_invariants(db, engine.client, document, run_id)  # the first ledger and the chain agree
    assert paid_receipts(restored_db, run_id) == payable  # the restored one adopted every payment


def test_a_payer_whose_claim_is_overwritten_mid_run_stops_before_its_next_batch(paying):
    _sandbox, document, db, run_id, engine = paying(channels=1, ledger_close_s=0.1)
    payout = Keypair.from_secret(document["payout"]["secret"])
    with Session(db) as session:
        run = session.get(Run, run_id)
        assert run is not None
        name = claim_name(document["network_passphrase"], run.period_offset)
    overwritten: list[str] = []

    def overwrite_once(_report) -> None:
        if overwritten:
            return
        # another payer (a copy of the ledger, say) writes its own claim on the payout account
        account = engine.client.account(payout.public_key)
        assert account is not None
        envelope = (
            TransactionBuilder(Account(payout.public_key, account.sequence), document["network_passphrase"], 100)
            .append_manage_data_op(name, b"\x07" * 32)
            .set_timeout(60)
            .build()
        )
        envelope.sign(payout)
        assert engine.client.submit(envelope.to_xdr()).outcome == "success"
        overwritten.append(envelope.hash_hex())

    report = engine.pay(run_id, progress=overwrite_once)
    assert overwritten
    assert report.status == RunStatus.STOPPED and "no longer this payer's" in report.reason
    with Session(db) as session:
        sent = session.exec(select(StellarTransaction).where(StellarTransaction.purpose == "payment")).all()
        pending = session.exec(
            select(Payment).where(Payment.run_id == run_id, Payment.status == PaymentStatus.PENDING)
        ).all()
        run = session.get(Run, run_id)
    # one channel: one transaction was out when the claim changed, none was built after
    assert len(sent) == 1 and len(pending) == 7
    assert run is not None and run.status == RunStatus.STOPPED
    assert sum(receipts_paid_on_chain(engine.client, document).values()) == 1


def test_a_copied_ledger_refuses_to_pay_until_recover_takes_the_claim_over(paying, tmp_path, ledger_url):
    _sandbox, document, db, run_id, engine = paying(tx_timeout_s=TIMEOUT_S, ledger_close_s=0.1)
    # the first payer records which database holds the ledger; a budget of 0 s sends one batch
    first = engine.pay(run_id, budget_s=0)
    assert first.status == RunStatus.PAYING
    copy_url = copied_ledger(ledger_url, tmp_path, db)
    copy_db = make_engine(copy_url)
    copy = PaymentEngine(UnitsOfWork(copy_db), engine.client, engine.keys, engine.config)
    with pytest.raises(LedgerMoved) as refused:
        copy.pay(run_id)
    assert f"payouts recover {run_id}" in str(refused.value)
    with Session(copy_db) as session:
        assert fingerprint_difference(session) is not None
        assert session.exec(select(PayerClaim).where(PayerClaim.status == "submitted")).all() == []
        held_when_copied = len(
            session.exec(select(StellarTransaction).where(StellarTransaction.purpose == "payment")).all()
        )
    assert held_when_copied > 0

    # the original goes on paying; the copy's operator runs `payouts recover`
    assert engine.pay(run_id).status == RunStatus.PAID
    _status, scan = copy.recover(run_id)
    assert scan.adopted_payments > 0 and not scan.problems
    with Session(copy_db) as session:
        assert fingerprint_difference(session) is None
        assert session.exec(select(LedgerEvent).where(LedgerEvent.event == "claim.taken_over")).all()
    payable = paid_receipts(db, run_id)
    report = copy.pay(run_id)
    assert report.status == RunStatus.PAID
    with Session(copy_db) as session:
        built = session.exec(select(StellarTransaction).where(StellarTransaction.purpose == "payment")).all()
    assert len(built) == held_when_copied  # the copy built nothing: the chain said it was paid
    assert receipts_paid_on_chain(engine.client, document) == Counter(dict.fromkeys(payable, 1))
    with pytest.raises(RunAlreadyPaid):
        engine.pay(run_id)


def test_preflight_counts_the_claim_entry_reserve(paying):
    """A payout account with XLM for the fees but not for the claim entry's base reserve stops
    at preflight, before anything is sent."""
    from payouts.stellar.preflight import BASE_RESERVE_STROOPS, PreflightError, check_payout_account

    _sandbox, document, _db, _run_id, engine = paying()
    account = engine.client.account(document["payout"]["public_key"])
    assert account is not None
    spendable = account.native_balance_stroops - BASE_RESERVE_STROOPS * (2 + account.subentries)
    asset = engine.asset
    check_payout_account(
        engine.client, account.account_id, asset, total_units=1, fee_budget_stroops=spendable, data_entries=()
    )
    with pytest.raises(PreflightError):
        check_payout_account(
            engine.client, account.account_id, asset, total_units=1, fee_budget_stroops=spendable, data_entries=("c",)
        )


def test_a_horizon_restarting_while_the_claim_is_read_again_delays_the_payer_and_pays_each_receipt_once(paying):
    sandbox, document, db, run_id, engine = paying(channels=1, ledger_close_s=0.1)
    # one read attempt: Horizon being down for a moment is the engine's to ride out, not the client's
    engine.client = HorizonClient(sandbox.url, timeout_s=10, max_read_attempts=1)
    outages: list[float] = []

    def go_down_once(_report) -> None:
        if outages:
            return
        # the server stops listening just before the next build batch reads the claim again
        sandbox._unserve()
        outages.append(1.5)
        threading.Timer(1.5, sandbox._serve).start()

    report = engine.pay(run_id, progress=go_down_once)
    assert outages
    assert report.status == RunStatus.PAID, report.reason
    on_chain = receipts_paid_on_chain(engine.client, document)
    assert set(on_chain.values()) == {1} and set(on_chain) == paid_receipts(db, run_id)
