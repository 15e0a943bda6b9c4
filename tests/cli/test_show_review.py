"""`payouts show` through the CLI: what is signed (sections adding up to the manifest, retries
included), approvals so far, balances from Horizon or "unavailable", the period by name; and
`payouts approve` refusing a run past a cap unless the exceedance goes into the manifest."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, col, select
from stellar_sdk import Keypair
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.ledger.db import make_engine
from payouts.ledger.models import Approval, Payment
from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import init_sandbox
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.keys import write_keypair
from tests import factories

runner = CliRunner()
OTHER = Keypair.random().public_key


def invoke(*args: str, **kwargs):
    return runner.invoke(app, list(args), catch_exceptions=False, **kwargs)


def _month(tmp_path, offset: int, address_of_farm_2: str, farmer: str = OTHER):
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
    return factories.write(
        tmp_path / f"m{offset}.json", factories.snapshot(period_offset=offset, nodes=nodes, farms=farms)
    )


def _manifest_rows(tmp_path, run_id: int) -> list[Payment]:
    engine = make_engine(f"sqlite:///{tmp_path / 'state' / 'payouts.sqlite3'}")
    with Session(engine) as session:
        rows = list(
            session.exec(select(Payment).where(Payment.run_id == run_id, col(Payment.in_manifest).is_(True))).all()
        )
    engine.dispose()
    return rows


def test_show_sections_add_up_to_the_manifest_with_retries_and_say_unavailable_balances(tmp_path, monkeypatch):
    monkeypatch.setenv("PAYOUTS_HORIZON_URL", "http://127.0.0.1:1")  # nothing listens: unavailable
    assert invoke("calculate", "-s", str(_month(tmp_path, 91, ""))).exit_code == 0  # farm 2 held
    second = json.loads(invoke("calculate", "-s", str(_month(tmp_path, 92, OTHER)), "--json").stdout)
    review = json.loads(invoke("show", str(second["run_id"]), "--json").stdout)

    rows = _manifest_rows(tmp_path, second["run_id"])
    assert any(p.kind == "retry" for p in rows)
    sections = {s["kind"]: s for s in review["sections"]}
    assert sections["retry"]["payments"] == 1
    assert sum(s["tft_units"] for s in review["sections"]) == review["manifest_total_tft_units"]
    assert review["manifest_total_tft_units"] == sum(p.amount_tft_units for p in rows)
    assert review["manifest_payment_count"] == len(rows)
    assert review["period_month"] == "December 2025"
    assert all(b["tft_units"] is None for b in review["balances"])
    assert review["approvals"] == []

    shown = invoke("show", str(second["run_id"]))
    assert shown.exit_code == 0
    assert "What the approvers sign" in shown.stdout and "retries" in shown.stdout
    assert "manifest total" in shown.stdout and "unavailable" in shown.stdout
    assert "December 2025" in shown.stdout and "Approvals so far: none" in shown.stdout


@pytest.fixture
def sandbox():
    with running_sandbox(ledger_close_s=0.1, submission_timeout_s=5) as server:
        yield server


def test_show_reads_the_payout_balance_from_horizon(sandbox, tmp_path, monkeypatch):
    accounts = tmp_path / "accounts.json"
    init_sandbox(sandbox.url, accounts, farmers=2, channels=1)
    monkeypatch.setenv("PAYOUTS_HORIZON_URL", sandbox.url)
    monkeypatch.setenv("PAYOUTS_STELLAR_ACCOUNTS_FILE", str(accounts))
    document = json.loads(accounts.read_text())
    run = json.loads(invoke("calculate", "-s", str(_month(tmp_path, 91, OTHER)), "--json").stdout)
    review = json.loads(invoke("show", str(run["run_id"]), "--json").stdout)
    payout = next(b for b in review["balances"] if b["role"] == "payout")
    with HorizonClient(sandbox.url) as client:
        info = client.account(payout["account_id"])
    assert info is not None
    line = info.trustline(document["asset"]["code"], document["asset"]["issuer"])
    assert line is not None and payout["tft_units"] == line.balance_units
    assert payout["due_tft_units"] == review["manifest_total_tft_units"]
    treasury = next(b for b in review["balances"] if b["role"] == "treasury")
    assert treasury["tft_units"] is None and treasury["unavailable"] == "no account configured"


def test_approve_refuses_a_run_past_a_cap_until_the_exceedance_is_accepted(tmp_path, monkeypatch):
    monkeypatch.setenv("PAYOUTS_HORIZON_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("PAYOUTS_CAP_NODE_TFT_UNITS", "1")
    approver = Keypair.random()
    key_file = tmp_path / "approver.key"
    write_keypair(key_file, approver)
    monkeypatch.setenv("PAYOUTS_APPROVERS", approver.public_key)
    run_id = json.loads(invoke("calculate", "-s", str(_month(tmp_path, 91, OTHER)), "--json").stdout)["run_id"]

    refused = invoke("approve", str(run_id), "-k", str(key_file), "-y")
    assert refused.exit_code == 1
    assert "node 10:" in refused.stderr and "node 20:" in refused.stderr and "--accept-exceedance" in refused.stderr
    assert json.loads(invoke("runs", "--json").stdout)[0]["status"] == "calculated"

    accepted = invoke("approve", str(run_id), "-k", str(key_file), "-y", "--accept-exceedance", "big nodes, checked")
    assert accepted.exit_code == 0, accepted.output
    assert '"accepted_exceedances"' in accepted.stdout  # printed in the manifest to sign
    assert json.loads(invoke("runs", "--json").stdout)[0]["status"] == "approved"
    engine = make_engine(f"sqlite:///{tmp_path / 'state' / 'payouts.sqlite3'}")
    with Session(engine) as session:
        (approval,) = session.exec(select(Approval)).all()
    engine.dispose()
    assert json.loads(approval.manifest_json)["accepted_exceedances"]["reason"] == "big nodes, checked"

    review = json.loads(invoke("show", str(run_id), "--json").stdout)
    assert review["unaccepted_exceedances"] == [] and review["approvals"][0]["approver"] == approver.public_key
    assert review["approvals"][0]["counts"] is True
    shown = invoke("show", str(run_id)).stdout
    assert "Approvals so far" in shown and "UTC" in shown and "accepted in the manifest" in shown
