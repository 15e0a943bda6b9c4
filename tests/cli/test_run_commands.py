"""The operator's commands, through typer's CliRunner, against a real SQLite ledger."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from payouts.cli.main import app
from tests import factories

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def snapshot_file(tmp_path):
    document = factories.snapshot(nodes=[factories.node(1234), factories.node(1300)])
    return factories.write(tmp_path / "month.json.gz", document)


def test_every_command_has_help():
    for command in (
        [],
        ["calculate"],
        ["runs"],
        ["show"],
        ["receipt"],
        ["receipt", "verify"],
        ["synth"],
        ["demo"],
        ["db"],
        ["sandbox"],
    ):
        result = invoke(*command, "--help")
        assert result.exit_code == 0, command
        assert "Usage" in result.output


def test_calculate_json_prints_the_documented_shape_and_is_idempotent(snapshot_file):
    first = invoke("calculate", "--snapshot", str(snapshot_file), "--json")
    assert first.exit_code == 0, first.output
    document = json.loads(first.stdout)
    assert set(document) >= {"period", "run_id", "snapshot_sha256", "receipts", "totals"}
    assert [r["node_id"] for r in document["receipts"]] == [1234, 1300]
    receipt = document["receipts"][0]
    assert set(receipt) >= {
        "node_id",
        "farm_id",
        "measured_uptime",
        "uptime_permille",
        "violation",
        "eligibility",
        "reward",
        "hash",
        "stellar_payout_address",
    }
    assert isinstance(receipt["reward"]["tft"], int) and isinstance(receipt["reward"]["musd"], int)
    again = invoke("calculate", "--snapshot", str(snapshot_file), "--json")
    assert again.exit_code == 0
    assert json.loads(again.stdout) == document


def test_dry_run_prints_a_null_run_id_and_records_nothing(snapshot_file):
    result = invoke("calculate", "--snapshot", str(snapshot_file), "--json", "--dry-run")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["run_id"] is None
    assert json.loads(invoke("runs", "--json").stdout) == []


def test_malformed_snapshot_exits_2_with_file_and_path(tmp_path):
    document = factories.snapshot()
    document["nodes"][0]["resources"]["cru"] = "four"
    path = factories.write(tmp_path / "bad.json", document)
    result = invoke("calculate", "--snapshot", str(path))
    assert result.exit_code == 2
    assert "bad.json" in result.stderr and "$.nodes[0].resources.cru" in result.stderr
    assert json.loads(invoke("runs", "--json").stdout) == []


def test_runs_show_and_receipt_lookup(snapshot_file, tmp_path):
    document = json.loads(invoke("calculate", "--snapshot", str(snapshot_file), "--json").stdout)
    runs = json.loads(invoke("runs", "--json").stdout)
    assert runs[0]["status"] == "calculated" and runs[0]["waits_for"].startswith("approvals: 0 of 1 (payouts show 1")
    review = json.loads(invoke("show", str(document["run_id"]), "--json").stdout)
    assert review["total_tft_units"] == document["totals"]["tft"]
    assert review["nodes"] == 2
    readable = invoke("show", str(document["run_id"]))
    assert readable.exit_code == 0 and "Receipts by eligibility" in readable.stdout

    receipt_hash = document["receipts"][0]["hash"]
    shown = invoke("receipt", receipt_hash)
    assert shown.exit_code == 0
    receipt_file = tmp_path / f"{receipt_hash}.json"
    receipt_file.write_text(json.dumps(json.loads(shown.stdout), indent=2))  # pretty-printed copy
    verified = invoke("receipt", "verify", str(receipt_file))
    assert verified.exit_code == 0 and verified.stdout.strip() == receipt_hash

    tampered = json.loads(shown.stdout)
    tampered["measured_uptime"] += 1
    receipt_file.write_text(json.dumps(tampered))
    assert invoke("receipt", "verify", str(receipt_file)).exit_code == 1


def test_unknown_run_and_unknown_receipt_are_clear_errors():
    assert "run 99 does not exist" in invoke("show", "99").stderr
    assert invoke("receipt", "ab" * 32).exit_code == 1


def test_replace_flow_through_the_cli(tmp_path, snapshot_file):
    invoke("calculate", "--snapshot", str(snapshot_file))
    document = factories.snapshot(nodes=[factories.node(1234, connection_price=90)])
    other = factories.write(tmp_path / "other.json", document)
    refused = invoke("calculate", "--snapshot", str(other))
    assert refused.exit_code == 1 and "--replace" in refused.stderr
    replaced = invoke("calculate", "--snapshot", str(other), "--replace", "--json")
    assert replaced.exit_code == 0
    statuses = sorted(r["status"] for r in json.loads(invoke("runs", "--json").stdout))
    assert statuses == ["calculated", "replaced"]
