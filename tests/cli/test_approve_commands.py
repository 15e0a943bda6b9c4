"""`payouts approve` and `payouts reject` through the CLI with real key files."""

from __future__ import annotations

import json

from stellar_sdk import Keypair
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.stellar.keys import write_keypair
from tests import factories

runner = CliRunner()


def test_approve_with_a_key_file_then_reject_is_refused(monkeypatch, tmp_path):
    approver = Keypair.random()
    key_file = tmp_path / "approver.key"
    write_keypair(key_file, approver)
    monkeypatch.setenv("PAYOUTS_APPROVERS", f"{approver.public_key},{Keypair.random().public_key}")
    snapshot = factories.write(tmp_path / "s.json", factories.snapshot())
    run_id = json.loads(runner.invoke(app, ["calculate", "-s", str(snapshot), "--json"]).stdout)["run_id"]

    declined = runner.invoke(app, ["approve", str(run_id), "--key-file", str(key_file)], input="n\n")
    assert declined.exit_code == 1 and "Manifest to sign" in declined.stdout
    result = runner.invoke(app, ["approve", str(run_id), "--key-file", str(key_file), "--yes"])
    assert result.exit_code == 0, result.output
    assert "1 of 1 approval(s); status approved" in result.stderr  # the sandbox network needs one
    assert approver.secret not in result.output
    runs = json.loads(runner.invoke(app, ["runs", "--json"]).stdout)
    assert runs[0]["status"] == "approved"


def test_unconfigured_approver_is_refused(monkeypatch, tmp_path):
    key_file = tmp_path / "k.key"
    write_keypair(key_file, Keypair.random())
    monkeypatch.setenv("PAYOUTS_APPROVERS", Keypair.random().public_key)
    snapshot = factories.write(tmp_path / "s.json", factories.snapshot())
    run_id = json.loads(runner.invoke(app, ["calculate", "-s", str(snapshot), "--json"]).stdout)["run_id"]
    result = runner.invoke(app, ["approve", str(run_id), "-k", str(key_file), "-y"])
    assert result.exit_code == 1 and "not a configured approver" in result.stderr
    rejected = runner.invoke(app, ["reject", str(run_id), "--reason", "wrong snapshot"])
    assert rejected.exit_code == 0
    assert json.loads(runner.invoke(app, ["runs", "--json"]).stdout)[0]["status"] == "rejected"
