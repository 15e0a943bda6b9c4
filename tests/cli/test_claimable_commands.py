"""Claimable balances through the operator's commands, on SQLite and PostgreSQL: approve signs
the policy, pay sends a balance to the farmer without a trustline, held/status/export say so,
reconcile compares the balances and settles what is claimed, reclaim takes back what is not
after the window, and the next run pays such a receipt once. A pay process killed right after
committing a claimable-balance transaction creates the balance once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
from sqlmodel import Session, select
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Asset as SdkAsset
from stellar_sdk import Keypair, TransactionBuilder
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.ledger.db import make_engine
from payouts.ledger.models import Payment, Run, StellarTransaction
from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import init_sandbox
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.keys import write_keypair
from tests import factories
from tests.support.payments import chain_payments, check_invariants, fund_payout

runner = CliRunner()
WINDOW_DAYS = 30


@pytest.fixture
def operator(monkeypatch, tmp_path, ledger_url):
    """A sandbox, a calculated run (30 nodes, 5 farms, the last farmer without a trustline) and
    the environment the CLI reads, with claimable balances on."""
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
            "PAYOUTS_STATE_DIR": str(tmp_path / "state"),
            "PAYOUTS_CLAIMABLE_FOR_NO_TRUSTLINE": "true",
            "PAYOUTS_CLAIMABLE_RECLAIM_AFTER_DAYS": str(WINDOW_DAYS),
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
        yield sandbox, document, client, run_id, ledger_url, tmp_path / "approver.key"
        client.close()


def _cli(*args: str, code: int = 0):
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    return json.loads(result.stdout) if "--json" in args else result


def _farmer(document: dict) -> dict:
    return next(f for f in document["farmers"] if not f["trustline"])


def _balances_for(sandbox, claimant: str) -> list[dict]:
    response = httpx.get(f"{sandbox.url}/claimable_balances", params={"claimant": claimant, "limit": 200})
    response.raise_for_status()
    return list(response.json()["_embedded"]["records"])


def _send(client, document: dict, keypair: Keypair, build) -> None:
    account = client.account(keypair.public_key)
    builder = TransactionBuilder(SdkAccount(keypair.public_key, account.sequence), document["network_passphrase"], 100)
    build(builder.set_timeout(120))
    envelope = builder.build()
    envelope.sign(keypair)
    assert client.submit(envelope.to_xdr()).outcome == "success"


def test_a_claimable_balance_from_approval_to_reclaim_and_the_next_run_pays_once(operator):
    sandbox, document, client, run_id, url, key = operator
    approved = _cli("approve", str(run_id), "-k", str(key), "-y")
    assert '"claimable_balances":{"for":"no_trustline","reclaim_after_s":2592000}' in approved.stdout
    paid = _cli("pay", str(run_id))
    assert "paid" in paid.stdout
    farmer = _farmer(document)
    with Session(make_engine(url)) as session:
        sent = session.exec(select(Payment).where(Payment.destination == farmer["public_key"])).all()
    assert len(sent) == 6 and {p.status for p in sent} == {"claimable"}
    balances = _balances_for(sandbox, farmer["public_key"])
    assert sorted(b["id"] for b in balances) == sorted(p.claimable_balance_id for p in sent)
    # every other receipt is paid by a payment, as before
    check_invariants(make_engine(url), client, document, run_id)

    held = _cli("held", "--json")
    assert [h["status"] for h in held] == ["claimable"] * 6
    assert all("claim it in your wallet before" in h["fix"] for h in held)
    text = _cli("held").stdout
    assert "Sent as claimable balances (6" in text
    status = _cli("status", "--address", farmer["public_key"]).stdout
    assert "claimable" in status and "waiting to be claimed" in status
    rows = _cli("status", "--address", farmer["public_key"], "--json")["entries"]
    assert {r["status"] for r in rows} == {"claimable"} and {r["owed_tft_units"] for r in rows} == {0}
    assert all(r["note"].startswith("sent as a claimable balance; claim it in your wallet before") for r in rows)
    exported = _cli("export", "--format", "json").stdout
    assert "claim it in your wallet before" in exported

    reconciled = _cli("reconcile", "--period", "2025-01", "--json")
    assert reconciled["clean"] is True and reconciled["paid_on_chain"] == reconciled["paid_in_ledger"] == 30
    assert reconciled["claimable_balances"]["live"] == 6 and reconciled["claimable_balances"]["due"] == {}
    statement = _cli("statement", "--period", "2025-01", "--json")
    assert statement["balances"] is True, statement
    assert _cli("reclaim", str(run_id), "--json")["state"] == "nothing due"

    # the farmer claims one balance; the window passes for the rest
    keypair = Keypair.from_secret(farmer["secret"])
    asset = SdkAsset(document["asset"]["code"], document["asset"]["issuer"])
    _send(client, document, keypair, lambda b: b.append_change_trust_op(asset))
    from stellar_sdk import ClaimClaimableBalance

    _send(client, document, keypair, lambda b: b.append_operation(ClaimClaimableBalance(sent[0].claimable_balance_id)))
    sandbox.chain.advance_clock(WINDOW_DAYS * 86_400 + 60)
    deadline = time.monotonic() + 10
    while client.latest_ledger().closed_at <= max(p.claimable_until for p in sent):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    due = runner.invoke(app, ["reconcile", "--period", "2025-01"])
    assert due.exit_code == 0, due.output
    assert f"payouts reclaim {run_id}" in due.stderr and "5 unclaimed balance(s)" in due.stderr
    reclaimed = _cli("reclaim", str(run_id), "--json")
    assert (reclaimed["state"], reclaimed["reclaimed"]) == ("reclaimed", 5), reclaimed
    assert _balances_for(sandbox, farmer["public_key"]) == []
    with Session(make_engine(url)) as session:
        rows = {p.id: session.get(Payment, p.id) for p in sent}
    assert rows[sent[0].id].status == "paid"
    assert {(rows[p.id].status, rows[p.id].hold_reason) for p in sent[1:]} == {("held", "not_claimed")}
    owed = sorted(p.amount_tft_units for p in sent[1:])
    held = _cli("held", "--json")
    assert sorted(h["amount_tft_units"] for h in held) == owed and {h["reason"] for h in held} == {"not_claimed"}
    statement = _cli("statement", "--period", "2025-01", "--json")
    assert statement["balances"] is True, statement

    # the farmer has the trustline now: the next run pays each reclaimed receipt once
    made = _cli("run", "--retries-now", "--in-process", "--json")
    off_cycle = made["run_id"]
    assert off_cycle is not None, made
    _cli("approve", str(off_cycle), "-k", str(key), "-y")
    done = _cli("run", "--retries-now", "--in-process", "--json")
    assert done["run_id"] == off_cycle and done["status"] == "exported", done
    to_farmer = sorted(
        int(r["amount"].replace(".", "")) for r in chain_payments(client, document) if r["to"] == farmer["public_key"]
    )
    assert to_farmer == owed
    line = client.account(farmer["public_key"]).trustline(asset.code, asset.issuer)
    assert line.balance_units == sent[0].amount_tft_units + sum(owed)
    assert _cli("held", "--json") == []
    assert _cli("run", "--retries-now", "--in-process", "--json")["run_id"] is None


def test_policy_off_holds_the_farmer_as_before(operator, monkeypatch):
    sandbox, document, client, run_id, url, key = operator
    monkeypatch.setenv("PAYOUTS_CLAIMABLE_FOR_NO_TRUSTLINE", "false")
    approved = _cli("approve", str(run_id), "-k", str(key), "-y")
    assert "claimable_balances" not in approved.stdout
    _cli("pay", str(run_id))
    farmer = _farmer(document)
    assert _balances_for(sandbox, farmer["public_key"]) == []
    held = _cli("held", "--json")
    assert {h["reason"] for h in held} == {"no_trustline"} and len(held) == 6
    check_invariants(make_engine(url), client, document, run_id)


def test_a_setting_changed_after_approval_changes_nothing_signed(operator, monkeypatch):
    sandbox, document, _client, run_id, _url, key = operator
    monkeypatch.setenv("PAYOUTS_CLAIMABLE_FOR_NO_TRUSTLINE", "false")
    _cli("approve", str(run_id), "-k", str(key), "-y")
    # turned on after the approval: the run was signed without it, so it holds as before
    monkeypatch.setenv("PAYOUTS_CLAIMABLE_FOR_NO_TRUSTLINE", "true")
    again = _cli("approve", str(run_id), "-k", str(key), "-y", code=1)
    assert "would void their approvals" in again.output
    _cli("pay", str(run_id))
    assert _balances_for(sandbox, _farmer(document)["public_key"]) == []
    assert {h["reason"] for h in _cli("held", "--json")} == {"no_trustline"}


def test_show_displays_the_claimable_policy_the_manifest_records(operator, monkeypatch):
    _sandbox, _document, _client, run_id, _url, key = operator
    before = _cli("show", str(run_id), "--json")
    assert before["claimable_policy"] is None and before["claimable_reclaim_after_days"] is None
    _cli("approve", str(run_id), "-k", str(key), "-y")
    # this machine's setting changes after the approval: show tells what was signed, not the setting
    monkeypatch.setenv("PAYOUTS_CLAIMABLE_FOR_NO_TRUSTLINE", "false")
    monkeypatch.setenv("PAYOUTS_CLAIMABLE_RECLAIM_AFTER_DAYS", "7")
    shown = _cli("show", str(run_id), "--json")
    assert shown["claimable_policy"] == {"for": "no_trustline", "reclaim_after_s": WINDOW_DAYS * 86_400}
    assert shown["claimable_reclaim_after_days"] == WINDOW_DAYS
    text = " ".join(_cli("show", str(run_id)).stdout.split())
    assert "Claimable policy (as the manifest records it)" in text
    assert f"claimable balances on for destinations without a TFT trustline, reclaimed after {WINDOW_DAYS} days" in text


def test_show_says_when_the_manifest_records_no_claimable_policy(operator, monkeypatch):
    _sandbox, _document, _client, run_id, _url, key = operator
    monkeypatch.setenv("PAYOUTS_CLAIMABLE_FOR_NO_TRUSTLINE", "false")
    _cli("approve", str(run_id), "-k", str(key), "-y")
    monkeypatch.setenv("PAYOUTS_CLAIMABLE_FOR_NO_TRUSTLINE", "true")
    shown = _cli("show", str(run_id), "--json")
    assert shown["claimable_policy"] is None and shown["claimable_reclaim_after_days"] is None
    text = " ".join(_cli("show", str(run_id)).stdout.split())
    assert "claimable balances off (a destination without a TFT trustline is held)" in text


def test_a_bad_reclaim_window_is_named(operator, monkeypatch):
    _sandbox, _document, _client, run_id, _url, key = operator
    monkeypatch.setenv("PAYOUTS_CLAIMABLE_RECLAIM_AFTER_DAYS", "0")
    result = runner.invoke(app, ["approve", str(run_id), "-k", str(key), "-y"])
    assert result.exit_code != 0
    assert "PAYOUTS_CLAIMABLE_RECLAIM_AFTER_DAYS" in result.output and "Traceback" not in result.output


# `payouts pay` SIGKILLed right after the commit of the first transaction that creates a
# claimable balance: its bytes are on record and were never sent
_KILLED_AFTER_CLAIMABLE_COMMIT = """
import os, signal, sys
from payouts.ledger.unit_of_work import UnitOfWork
import payouts.runs.payment.build as build

record = build.record_balance_ids
armed = []

def recording(session, group, envelope):
    record(session, group, envelope)
    if any(p.delivery == "claimable_balance" for p in group):
        armed.append(True)

build.record_balance_ids = recording
commit = UnitOfWork.commit_before_submit

def killed(self):
    commit(self)
    if armed:
        os.kill(os.getpid(), signal.SIGKILL)

UnitOfWork.commit_before_submit = killed
from payouts.cli.main import app
app(["pay", sys.argv[1]])
"""


@pytest.mark.slow
def test_pay_killed_between_commit_and_submit_creates_each_balance_once(operator):
    sandbox, document, client, run_id, url, key = operator
    _cli("approve", str(run_id), "-k", str(key), "-y")
    env = dict(os.environ, PAYOUTS_LEASE_TTL_S="2")
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_AFTER_CLAIMABLE_COMMIT, str(run_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    farmer = _farmer(document)
    with Session(make_engine(url)) as session:
        waiting = session.exec(
            select(Payment).where(Payment.destination == farmer["public_key"], Payment.status == "submitted")
        ).all()
        assert waiting and all(p.claimable_balance_id for p in waiting)
        recorded = {p.claimable_balance_id for p in waiting}
        killed_rows = [(p.id, p.transaction_id, p.claimable_balance_id) for p in waiting]
    on_chain_before = {b["id"] for b in _balances_for(sandbox, farmer["public_key"])}
    assert not recorded & on_chain_before  # committed, never sent
    final = subprocess.run(
        [sys.executable, "-m", "payouts.cli.main", "pay", str(run_id)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert final.returncode == 0, final.stderr[-2000:]
    with Session(make_engine(url)) as session:
        sent = session.exec(select(Payment).where(Payment.destination == farmer["public_key"])).all()
        transactions = session.exec(select(StellarTransaction).where(StellarTransaction.run_id == run_id)).all()
        assert session.get(Run, run_id).status == "paid"
    balances = _balances_for(sandbox, farmer["public_key"])
    sent_ids = {p.id: p.claimable_balance_id for p in sent}
    # one balance per receipt, each the one the ledger recorded
    assert sorted(b["id"] for b in balances) == sorted(p.claimable_balance_id for p in sent)
    assert len(balances) == len(sent) == 6 and {p.status for p in sent} == {"claimable"}
    # the killed transaction was sent as it was recorded, or (its ledger bound passed while the
    # payer was down) provably never landed and was rebuilt: its balance then never exists
    by_id = {t.id: t for t in transactions}
    for payment_id, transaction_id, balance_id in killed_rows:
        status = by_id[transaction_id].status
        assert status in ("confirmed", "dead"), status
        if status == "confirmed":
            assert balance_id in {b["id"] for b in balances} and balance_id == sent_ids[payment_id]
        elif balance_id != sent_ids[payment_id]:
            assert client.claimable_balance(balance_id) is None
            assert client.claimable_balance_operations(balance_id) == []
        # (a rebuild on the same channel and sequence number makes the same balance id)
    for balance_id in sent_ids.values():
        created = [
            op for op in client.claimable_balance_operations(balance_id) if op["type"] == "create_claimable_balance"
        ]
        assert len(created) == 1, created
    assert {t.status for t in transactions if t.tx_hash in {p.tx_hash for p in sent}} == {"confirmed"}
    check_invariants(make_engine(url), client, document, run_id)
