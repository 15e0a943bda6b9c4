"""The operator's payment workflow through the CLI, and a pay process killed at random points,
on SQLite and PostgreSQL.

The sandbox runs in this process; `payouts pay` runs as a real subprocess that is SIGKILLed
mid-run, again and again, before one run to the end. Afterwards every receipt is paid exactly
once and the chain totals equal the ledger's.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from sqlmodel import Session, select
from stellar_sdk import Keypair
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.ledger.db import make_engine
from payouts.ledger.models import Payment, Run, StellarTransaction
from payouts.money import format_tft_human
from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import init_sandbox
from payouts.sandbox.faults import FaultSpec
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.keys import write_keypair
from tests import factories
from tests.support.payments import chain_payments, check_invariants, fund_payout

runner = CliRunner()


@pytest.fixture
def operator(monkeypatch, tmp_path, ledger_url):
    """A sandbox with accounts, an approver key and the environment the CLI reads."""
    with running_sandbox(ledger_close_s=0.1, submission_timeout_s=2, seed=5) as sandbox:
        accounts = tmp_path / "accounts.json"
        document = init_sandbox(sandbox.url, accounts, farmers=5, without_trustline=1, channels=3).document
        client = HorizonClient(sandbox.url)
        fund_payout(client, document, 10**6 * 10**7)
        approver = Keypair.random()
        write_keypair(tmp_path / "approver.key", approver)
        env = {
            "PAYOUTS_DATABASE_URL": ledger_url,
            "PAYOUTS_STELLAR_ACCOUNTS_FILE": str(accounts),
            "PAYOUTS_HORIZON_URL": sandbox.url,
            "PAYOUTS_APPROVERS": approver.public_key,
            "PAYOUTS_NETWORK": "dev",
            "PAYOUTS_TX_TIMEOUT_S": "30",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        farms = [
            {
                "farm_id": 100 + i,
                "name": f"farm {i}",
                "twin_id": 7,
                "certification": "NotCertified",
                "stellar_address": f["public_key"],
            }
            for i, f in enumerate(document["farmers"])
        ]
        nodes = [factories.node(1000 + n, farm_id=100 + n % 5) for n in range(30)]
        snapshot = factories.write(tmp_path / "month.json", factories.snapshot(nodes=nodes, farms=farms))
        run_id = json.loads(runner.invoke(app, ["calculate", "-s", str(snapshot), "--json"]).stdout)["run_id"]
        approved = runner.invoke(app, ["approve", str(run_id), "-k", str(tmp_path / "approver.key"), "-y"])
        assert approved.exit_code == 0, approved.output
        yield sandbox, document, client, run_id, ledger_url
        client.close()


def test_pay_reconcile_and_held(operator):
    _sandbox, document, client, run_id, url = operator
    paid = runner.invoke(app, ["pay", str(run_id)])
    assert paid.exit_code == 0, paid.output
    assert "paid; 24 paid" in paid.stdout
    check_invariants(make_engine(url), client, document, run_id)
    reconciled = runner.invoke(app, ["reconcile", "--period", "2025-01", "--json"])
    assert reconciled.exit_code == 0, reconciled.output
    assert json.loads(reconciled.stdout)["clean"] is True
    held = json.loads(runner.invoke(app, ["held", "--json"]).stdout)
    assert {h["reason"] for h in held} == {"no_trustline"} and len(held) == 6
    assert held[0]["fix"] == "add a TFT trustline to the payout address"
    assert {(h["retries"], h["retries_exhausted"]) for h in held} == {(0, False)}
    with Session(make_engine(url)) as session:
        assert session.get(Run, run_id).status == "reconciled"
    # no secret seed in any output, in the ledger or in the export
    exported = runner.invoke(app, ["export", "--format", "json"])
    assert exported.exit_code == 0, exported.output
    seeds = [document["payout"]["secret"], document["treasury"]["secret"]] + [c["secret"] for c in document["channels"]]
    with make_engine(url).connect() as connection:
        tables = ("event_history", "stellar_transactions", "payments", "runs", "approvals")
        ledger_text = " ".join(
            str(row) for table in tables for row in connection.exec_driver_sql(f"SELECT * FROM {table}").all()
        )
    for text in (paid.output, reconciled.output, exported.output, ledger_text):
        assert not any(seed in text for seed in seeds)


def test_reconcile_reports_a_payment_the_ledger_does_not_know(operator):
    _sandbox, document, client, run_id, url = operator
    assert runner.invoke(app, ["pay", str(run_id)]).exit_code == 0
    # someone pays from the payout account outside the scheduler
    from stellar_sdk import Account, Asset, TransactionBuilder

    payout = Keypair.from_secret(document["payout"]["secret"])
    envelope = (
        TransactionBuilder(
            Account(payout.public_key, client.account(payout.public_key).sequence),
            document["network_passphrase"],
            base_fee=100,
        )
        .append_payment_op(
            document["farmers"][0]["public_key"], Asset(document["asset"]["code"], document["asset"]["issuer"]), "5"
        )
        .set_timeout(60)
        .build()
    )
    envelope.sign(payout)
    assert client.submit(envelope.to_xdr()).outcome == "success"
    result = runner.invoke(app, ["reconcile", "--period", "2025-01"])
    assert result.exit_code == 1
    assert envelope.hash_hex() in result.stderr
    with Session(make_engine(url)) as session:
        run = session.get(Run, run_id)
        assert run.status == "stopped" and "reconciliation mismatch" in run.status_reason
    # nothing was paid again to "fix" it
    assert len(chain_payments(client, document)) == 24 + 1


@pytest.mark.slow
def test_pay_killed_at_random_points_pays_every_receipt_exactly_once(operator):
    sandbox, document, client, run_id, url = operator
    sandbox.faults.spec = FaultSpec.parse("504_after_apply=0.2,drop_after_apply=0.1,504_without_apply=0.1")
    rng = random.Random(1234)
    # a killed payer's lease lapses after this; the next `pay` waits for it
    env = dict(os.environ, PAYOUTS_LEASE_TTL_S="2")
    kills = 0
    for _ in range(5):
        process = subprocess.Popen(
            [sys.executable, "-m", "payouts.cli.main", "pay", str(run_id)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(1.0, 2.5))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait(30)
    assert kills >= 1
    final = subprocess.run(
        [sys.executable, "-m", "payouts.cli.main", "pay", str(run_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stderr[-2000:]
    payments = check_invariants(make_engine(url), client, document, run_id)
    assert sum(p.status == "paid" for p in payments) == 24


# `payouts pay` with its payer killed at the named commit: just before it (nothing is on record
# and nothing was sent) or just after it (on record as `submitted`, not sent). The kill is
# SIGKILL from inside the process, so no handler, rollback or `finally` runs.
_KILLED_AT_COMMIT = """
import os, signal, sys
from payouts.ledger.unit_of_work import UnitOfWork

where, nth = sys.argv[1], int(sys.argv[2])
commit = UnitOfWork.commit_before_submit
calls = 0

def killed(self):
    global calls
    calls += 1
    if calls == nth and where == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    commit(self)
    if calls == nth and where == "after":
        os.kill(os.getpid(), signal.SIGKILL)

UnitOfWork.commit_before_submit = killed
from payouts.cli.main import app
app(["pay", sys.argv[3]])
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("nth", [1, 2])
def test_pay_killed_at_the_commit_before_submit_pays_every_receipt_exactly_once(operator, where, nth):
    _sandbox, document, client, run_id, url = operator
    env = dict(os.environ, PAYOUTS_LEASE_TTL_S="2")
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_AT_COMMIT, where, str(nth), str(run_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    with Session(make_engine(url)) as session:
        recorded = session.exec(select(StellarTransaction).where(StellarTransaction.run_id == run_id)).all()
    on_chain = chain_payments(client, document)
    if where == "before" and nth == 1:
        # killed before the first build was on record: no transaction exists, here or on chain
        assert recorded == [] and on_chain == []
    if where == "after":
        # the nth build is on record as submitted, and none of its bytes were sent
        sent = {r["transaction_hash"] for r in on_chain}
        assert [t for t in recorded if t.status == "submitted" and t.tx_hash not in sent]
    if where == "after" and nth == 1:
        assert recorded and on_chain == [] and {t.status for t in recorded} == {"submitted"}
    final = subprocess.run(
        [sys.executable, "-m", "payouts.cli.main", "pay", str(run_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stderr[-2000:]
    payments = check_invariants(make_engine(url), client, document, run_id)
    assert sum(p.status == "paid" for p in payments) == 24


# `payouts pay` interrupted by Ctrl-C (a real SIGINT to the process) right after its nth
# transaction is on record: an operator's Ctrl-C at a point where something is in flight.
_INTERRUPTED_AT_COMMIT = """
import os, signal, sys
from payouts.ledger.unit_of_work import UnitOfWork

signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
nth = int(sys.argv[1])
commit = UnitOfWork.commit_before_submit
calls = 0

def interrupted(self):
    global calls
    calls += 1
    commit(self)
    if calls == nth:
        os.kill(os.getpid(), signal.SIGINT)

UnitOfWork.commit_before_submit = interrupted
from payouts.cli.main import app
app(["pay", sys.argv[2]])
"""


def test_ctrl_c_during_pay_loses_nothing_and_a_resumed_pay_summarizes_the_whole_run(operator):
    _sandbox, document, client, run_id, url = operator
    # three channels: the 10th transaction is built once at least 7 have been answered
    interrupted = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_AT_COMMIT, "10", str(run_id)],
        env=dict(os.environ, PAYOUTS_LEASE_TTL_S="2"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert interrupted.returncode == 130, interrupted.stderr[-2000:]
    assert "nothing is lost" in interrupted.stderr and f"payouts pay {run_id}` again" in interrupted.stderr
    assert "Traceback" not in interrupted.stderr + interrupted.stdout

    # `payouts runs` shows where the run being paid stands, from the ledger
    with Session(make_engine(url)) as session:
        payments = session.exec(select(Payment).where(Payment.run_id == run_id)).all()
    paid_before = [p for p in payments if p.status == "paid"]
    held = [p for p in payments if p.status == "held"]
    pending = [p for p in payments if p.status in ("pending", "submitted")]
    assert 7 <= len(paid_before) < 24 and pending and len(held) == 6
    listed = json.loads(runner.invoke(app, ["runs", "--json"]).stdout)
    (row,) = [r for r in listed if r["run_id"] == run_id]
    assert row["status"] == "paying"
    assert row["payments"] == row["payments"] | {
        "paid_count": len(paid_before),
        "paid_tft_units": sum(p.amount_tft_units for p in paid_before),
        "held_count": 6,
        "held_tft_units": sum(p.amount_tft_units for p in held),
        "pending_count": len(pending),
        "pending_tft_units": sum(p.amount_tft_units for p in pending),
    }
    table = runner.invoke(app, ["runs"], env={"COLUMNS": "250"}).stdout
    assert f"{len(pending)} pending (" in table and "6 held (" in table

    # paying again continues; its summary covers the whole run, and this call's own work
    resumed = runner.invoke(app, ["pay", str(run_id)], env={"COLUMNS": "250"})
    assert resumed.exit_code == 0, resumed.output
    held_tft = format_tft_human(sum(p.amount_tft_units for p in held))
    assert (
        f"run {run_id}: paid; 24 paid (" in resumed.stdout
        and f"6 held ({held_tft} TFT), 0 pending (0 TFT)" in resumed.stdout
    )
    assert f"this call: {24 - len(paid_before)} paid" in resumed.stdout
    assert "0 pending (0 TFT); 0 unknown outcomes resolved" in resumed.stdout
    assert "; whole run: 24 transactions" in resumed.stdout  # one per receipt, most sent before
    payments = check_invariants(make_engine(url), client, document, run_id)
    assert sum(p.status == "paid" for p in payments) == 24
    total = sum(p.amount_tft_units for p in payments if p.status == "paid")
    assert f"24 paid ({format_tft_human(total)} TFT)" in resumed.stdout
