"""The monthly job in one process: each period moves forward once, waiting states are left
alone, pause stops payments, a stopped run continues where it stopped."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlmodel import Session, select

from payouts.ledger.db import session_scope
from payouts.ledger.models import Run, StellarTransaction
from payouts.ledger.unit_of_work import UnitsOfWork
from payouts.periods import Period
from payouts.runs.control import set_paused
from payouts.runs.monthly import ProgramWindow, continue_run
from payouts.runs.payment import PaymentEngine
from payouts.sandbox import running_sandbox
from payouts.stellar.horizon import HorizonClient
from payouts.wiring import build_monthly_job, export_dir, pay_config, signing_keys
from tests.support.monthly import approve, count_events, prepare_month
from tests.support.payments import check_invariants


@pytest.fixture
def sandbox():
    with running_sandbox(ledger_close_s=0.1, submission_timeout_s=5) as server:
        yield server


@pytest.fixture
def webhook():
    """A loopback receiver for alert webhooks."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()


def _transactions(db) -> list[StellarTransaction]:
    """What was sent to pay or fund (the payer's claim on the period is neither)."""
    with Session(db) as session:
        return list(session.exec(select(StellarTransaction).where(StellarTransaction.purpose != "claim")).all())


def test_a_period_goes_from_inputs_to_export_once_and_waits_for_approvals(sandbox, ledger_url, tmp_path, webhook):
    url, received = webhook
    month = prepare_month(tmp_path, sandbox.url, ledger_url, alert_webhook_url=url)
    monthly_job = build_monthly_job(month.settings, month.db)

    step = monthly_job.advance(month.period.offset)
    assert step.did == ["calculate", "remind approvers"] and step.status == "calculated"
    assert step.waits_for.startswith("approvals: 0 of 1")
    assert [r["event"] for r in received] == ["run.awaiting_approval"]
    assert received[0]["run_id"] == step.run_id and received[0]["total_tft_units"] > 0
    for _ in range(3):  # triggers while it waits: nothing moves, no second reminder the same day
        again = monthly_job.advance(month.period.offset)
        assert again.status == "calculated" and again.did == []
    assert len(received) == 1 and _transactions(month.db) == []

    approve(month, step.run_id)
    step = monthly_job.advance(month.period.offset)
    assert step.did == ["pay", "reconcile", "export"] and step.status == "exported"
    assert count_events(month, "run.calculated") == 1
    with HorizonClient(sandbox.url) as client:
        payments = check_invariants(month.db, client, month.document, step.run_id)
    assert sum(p.status == "paid" for p in payments) > 20
    folder = export_dir(month.settings) / month.period.label
    assert (folder / f"payouts-{month.period.label}.csv").stat().st_size > 0
    exported = json.loads((folder / f"payouts-{month.period.label}.json").read_text())
    assert exported["runs"][0]["run_id"] == step.run_id
    assert (export_dir(month.settings) / "site" / "index.html").exists()
    # done is done: another trigger changes nothing
    assert monthly_job.advance(month.period.offset).did == []
    assert count_events(month, "run.exported") == 1


def test_only_periods_of_the_program_whose_window_closed_are_due():
    window = ProgramWindow(first_offset=91, last_offset=93)
    p91, p92 = Period(91), Period(92)
    assert window.due(p91.window_end_ts - 1) == []
    assert window.due(p91.window_end_ts) == [p91]
    assert window.due(p92.window_end_ts + 10**8) == [p91, p92, Period(93)]
    assert 90 not in window and 94 not in window and 92 in window
    assert ProgramWindow(91).due(p92.window_end_ts) == [p91, p92]


def test_a_period_outside_the_program_or_without_inputs_is_not_touched(sandbox, ledger_url, tmp_path):
    month = prepare_month(tmp_path, sandbox.url, ledger_url)
    monthly_job = build_monthly_job(month.settings, month.db)
    outside = monthly_job.advance(month.period.offset - 1)
    assert "outside the transition program" in outside.waits_for and outside.run_id is None
    for path in month.settings.snapshot_drop_folder.iterdir():
        path.unlink()
    missing = monthly_job.advance(month.period.offset)
    assert missing.waits_for.startswith("inputs:") and missing.run_id is None
    with Session(month.db) as session:
        assert session.exec(select(Run)).all() == []


def test_pause_stops_payments_until_resume(sandbox, ledger_url, tmp_path):
    month = prepare_month(tmp_path, sandbox.url, ledger_url)
    monthly_job = build_monthly_job(month.settings, month.db)
    run_id = monthly_job.advance(month.period.offset).run_id
    approve(month, run_id)
    with session_scope(month.db) as session:
        set_paused(session, True, "treasury key rotation")
    step = monthly_job.advance(month.period.offset)
    assert step.status == "approved" and "paused: treasury key rotation" in step.waits_for
    assert _transactions(month.db) == []
    with session_scope(month.db) as session:
        set_paused(session, False)
    assert monthly_job.advance(month.period.offset).status == "exported"


def test_a_stopped_run_waits_for_an_operator_and_continues_where_it_stopped(sandbox, ledger_url, tmp_path, webhook):
    url, received = webhook
    month = prepare_month(tmp_path, sandbox.url, ledger_url, alert_webhook_url=url)
    monthly_job = build_monthly_job(month.settings, month.db)
    run_id = monthly_job.advance(month.period.offset).run_id
    approve(month, run_id)
    # an underfunded payout account stops the run at preflight, before anything is sent
    with HorizonClient(sandbox.url) as client:
        balance = (
            client.account(month.document["payout"]["public_key"])
            .trustline("TFT", month.document["asset"]["issuer"])
            .balance_units
        )
    drain = _drain_payout(sandbox.url, month.document, balance)
    step = monthly_job.advance(month.period.offset)
    assert step.status == "stopped" and "short by" in step.waits_for and "payouts continue" in step.waits_for
    assert received[-1]["event"] == "run.stopped" and "short by" in received[-1]["reason"]
    alerts = len(received)
    assert monthly_job.advance(month.period.offset).status == "stopped"  # waits; no second alert today
    assert len(received) == alerts and _transactions(month.db) == []

    _refill_payout(sandbox.url, month.document, balance)
    with session_scope(month.db) as session:
        assert continue_run(session, session.get(Run, run_id)) == "approved"
    step = monthly_job.advance(month.period.offset)
    # the chain scan finds the operator's own transfer out of the payout account before
    # anything is sent, and names it; the operator accepts it (payouts recover RUN --accept)
    assert step.status == "stopped" and "chain scan" in step.waits_for and drain in step.waits_for
    assert _transactions(month.db) == []
    with HorizonClient(sandbox.url) as client:
        engine = PaymentEngine(
            UnitsOfWork(month.db),
            client,
            signing_keys(month.settings),
            pay_config(month.settings, month.settings.network),
        )
        status, _scan = engine.recover(run_id, accept="ops, the transfer back to the treasury was ours (drill)")
    assert status == "paying"
    step = monthly_job.advance(month.period.offset)
    # paid, then reconciliation finds the operator's own transfer out of the payout account
    assert step.status == "stopped" and "reconciliation mismatch" in step.waits_for
    with HorizonClient(sandbox.url) as client:
        check_invariants(month.db, client, month.document, run_id, outside=frozenset({drain}))
    with session_scope(month.db) as session:
        status = continue_run(
            session, session.get(Run, run_id), accept_differences="the transfer back to the treasury was ours (drill)"
        )
    assert status == "reconciled"
    assert monthly_job.advance(month.period.offset).status == "exported"
    with HorizonClient(sandbox.url) as client:
        check_invariants(month.db, client, month.document, run_id, outside=frozenset({drain}))  # none paid again


def _drain_payout(url: str, document: dict, units: int) -> str:
    """Send the payout account's TFT back to the treasury (an operator's mistake)."""
    return _pay_tft(url, document, document["payout"]["secret"], document["treasury"]["public_key"], units)


def _refill_payout(url: str, document: dict, units: int) -> None:
    _pay_tft(url, document, document["treasury"]["secret"], document["payout"]["public_key"], units)


def _pay_tft(url: str, document: dict, secret: str, destination: str, units: int) -> str:
    from stellar_sdk import Account, Asset, Keypair, TransactionBuilder

    from payouts.money import format_tft

    source = Keypair.from_secret(secret)
    with HorizonClient(url) as client:
        sequence = client.account(source.public_key).sequence
        envelope = (
            TransactionBuilder(Account(source.public_key, sequence), document["network_passphrase"], base_fee=100)
            .append_payment_op(destination, Asset("TFT", document["asset"]["issuer"]), format_tft(units))
            .set_timeout(60)
            .build()
        )
        envelope.sign(source)
        assert client.submit(envelope.to_xdr()).outcome == "success"
    return envelope.hash_hex()
