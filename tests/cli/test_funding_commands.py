"""`payouts funding export | sign | submit`, then `payouts pay`, with a multisig treasury."""

from __future__ import annotations

import json

from stellar_sdk import Keypair, TransactionEnvelope
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.runs.funding import FUNDING_VALIDITY_S
from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import init_sandbox
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.keys import write_keypair
from tests.support.payments import grid_snapshot, make_treasury_multisig

runner = CliRunner()


def test_two_tier_funding_through_the_cli(monkeypatch, tmp_path, sqlite_url):
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        accounts = tmp_path / "accounts.json"
        document = init_sandbox(sandbox.url, accounts, farmers=2, channels=1).document
        client = HorizonClient(sandbox.url)
        signers = [Keypair.random(), Keypair.random()]
        make_treasury_multisig(client, document, signers)
        for index, signer in enumerate(signers):
            write_keypair(tmp_path / f"signer{index}.key", signer)
        approver = Keypair.random()
        write_keypair(tmp_path / "approver.key", approver)
        for key, value in {
            "PAYOUTS_DATABASE_URL": sqlite_url,
            "PAYOUTS_STELLAR_ACCOUNTS_FILE": str(accounts),
            "PAYOUTS_HORIZON_URL": sandbox.url,
            "PAYOUTS_APPROVERS": approver.public_key,
            "PAYOUTS_TWO_TIER": "true",
            "PAYOUTS_TREASURY_ACCOUNT": document["treasury"]["public_key"],
            "PAYOUTS_TX_TIMEOUT_S": "30",
        }.items():
            monkeypatch.setenv(key, value)
        snapshot = grid_snapshot(tmp_path, document["farmers"])
        run_id = json.loads(runner.invoke(app, ["calculate", "-s", str(snapshot.path), "--json"]).stdout)["run_id"]
        assert runner.invoke(app, ["approve", str(run_id), "-k", str(tmp_path / "approver.key"), "-y"]).exit_code == 0

        refused = runner.invoke(app, ["pay", str(run_id)])
        assert refused.exit_code == 1 and "not funded" in refused.stderr
        funding_file = tmp_path / "funding.json"
        sandbox.wait_for_ledger(30)  # 3 s of ledgers: enough for Horizon's close times to tell
        exported = runner.invoke(app, ["funding", "export", str(run_id), "--out", str(funding_file)])
        assert exported.exit_code == 0, exported.output
        assert "from treasury" in exported.stdout
        # its 7 days counted in the sandbox's measured 0.1 s ledgers, as a payment's bound is, not in 5 s ones
        exported_xdr = json.loads(funding_file.read_text())["envelope_xdr"]
        bounds = TransactionEnvelope.from_xdr(exported_xdr, document["network_passphrase"]).transaction
        assert bounds.preconditions is not None and bounds.preconditions.ledger_bounds is not None
        window = bounds.preconditions.ledger_bounds.max_ledger - client.latest_ledger().sequence
        assert FUNDING_VALIDITY_S / 0.2 < window <= FUNDING_VALIDITY_S / 0.05
        signed = runner.invoke(app, ["funding", "sign", str(funding_file), "-k", str(tmp_path / "signer0.key"), "-y"])
        assert signed.exit_code == 0 and "amount" in signed.stdout
        short = runner.invoke(app, ["funding", "submit", str(funding_file)])
        assert short.exit_code == 1 and "needs 2" in short.stderr
        runner.invoke(app, ["funding", "sign", str(funding_file), "-k", str(tmp_path / "signer1.key"), "-y"])
        submitted = runner.invoke(app, ["funding", "submit", str(funding_file)])
        assert submitted.exit_code == 0 and "funded" in submitted.stderr
        assert "next trigger:" in submitted.stderr and "payouts run --period" in " ".join(submitted.stderr.split())
        paid = runner.invoke(app, ["pay", str(run_id)])
        assert paid.exit_code == 0, paid.output
        assert json.loads(runner.invoke(app, ["runs", "--json"]).stdout)[0]["status"] == "paid"
        client.close()
