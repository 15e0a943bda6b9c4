"""Two-tier funding with claimable balances: TFT an unclaimed balance brings back into the hot
payout account when it is reclaimed is swept back to the treasury under the manifest's memo,
and neither `reconcile` nor `runs` reports it as stranded afterwards."""

from __future__ import annotations

import json
import time

from sqlmodel import Session, select
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.ledger.db import make_engine
from payouts.ledger.models import Payment, StellarTransaction
from payouts.periods import Period
from payouts.sandbox import running_sandbox
from tests.cli.test_treasury_months import _setup, _tft

runner = CliRunner()
WINDOW_DAYS = 30
OFFSET = 81


def _ok(args: list[str]):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (args, result.output)
    return result


def test_a_reclaimed_balance_goes_back_to_the_treasury_once(monkeypatch, tmp_path, ledger_url):
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        document, client, _signers, month = _setup(monkeypatch, tmp_path, sandbox, ledger_url)
        monkeypatch.setenv("PAYOUTS_CLAIMABLE_FOR_NO_TRUSTLINE", "true")
        monkeypatch.setenv("PAYOUTS_CLAIMABLE_RECLAIM_AFTER_DAYS", str(WINDOW_DAYS))
        asset = (document["asset"]["code"], document["asset"]["issuer"])
        payout, treasury = document["payout"]["public_key"], document["treasury"]["public_key"]
        no_trustline = document["farmers"][-1]["public_key"]
        db = make_engine(ledger_url)
        label = Period(OFFSET).label

        run_id = month.calculate(OFFSET)
        funding = month.fund(run_id)
        _ok(["pay", str(run_id)])
        with Session(db) as session:
            sent = session.exec(
                select(Payment).where(Payment.run_id == run_id, Payment.destination == no_trustline)
            ).all()
        assert sent and {p.status for p in sent} == {"claimable"}
        sent_units = sum(p.amount_tft_units for p in sent)
        reconciled = json.loads(_ok(["reconcile", "--period", label, "--json"]).stdout)
        assert reconciled["clean"] and reconciled["sweep"]["state"] == "nothing to sweep", reconciled["sweep"]
        assert _tft(client, payout, asset) == 0  # the balances left the hot account on time
        treasury_before = _tft(client, treasury, asset)

        sandbox.chain.advance_clock(WINDOW_DAYS * 86_400 + 60)
        deadline = time.monotonic() + 10
        while client.latest_ledger().closed_at <= max(p.claimable_until for p in sent):
            assert time.monotonic() < deadline, "the sandbox closed no ledger past the window"
            time.sleep(0.05)
        reclaimed = json.loads(_ok(["reclaim", str(run_id), "--json"]).stdout)
        assert (reclaimed["state"], reclaimed["reclaimed"]) == ("reclaimed", len(sent)), reclaimed
        # the reclaim step swept what came back: the hot account holds nothing again
        assert reclaimed["sweep"]["state"] == "swept", reclaimed["sweep"]
        assert reclaimed["sweep"]["amount_tft_units"] == sent_units
        assert _tft(client, payout, asset) == 0
        assert _tft(client, treasury, asset) - treasury_before == sent_units
        with Session(db) as session:
            sweeps = session.exec(
                select(StellarTransaction).where(
                    StellarTransaction.run_id == run_id, StellarTransaction.purpose == "sweep"
                )
            ).all()
        assert len(sweeps) == 1 and sweeps[0].status == "confirmed"
        assert sweeps[0].memo_hash == funding["manifest_sha256"]
        assert sweeps[0].tx_hash == reclaimed["sweep"]["tx_hash"]

        # afterwards nothing is stranded and nothing moves twice
        again = json.loads(_ok(["reconcile", "--period", label, "--json"]).stdout)
        assert again["clean"] and again["sweep"]["state"] == "already swept", again["sweep"]
        assert again["sweep"]["amount_tft_units"] == sent_units
        assert again["payout_surplus_tft_units"] == 0
        listed = _ok(["runs"])
        assert "no open run needs" not in listed.stderr
        twice = json.loads(_ok(["reclaim", str(run_id), "--json"]).stdout)
        assert twice["state"] == "nothing due" and "sweep" not in twice
        assert _tft(client, treasury, asset) - treasury_before == sent_units
        statement = json.loads(_ok(["statement", "--period", label, "--json"]).stdout)
        assert statement["balances"] is True, statement
        client.close()
