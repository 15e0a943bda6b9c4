"""Rehearsal tools: keys, a multisig treasury on the sandbox, a month for the sandbox's farmers,
and when the next trigger fires."""

from __future__ import annotations

import json
import re
import stat
from datetime import UTC, datetime

from stellar_sdk import Keypair
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.cli.rehearsal import human_utc, next_trigger
from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import fund_payout_account
from payouts.stellar.horizon import HorizonClient

runner = CliRunner()


def test_keys_new_writes_a_private_seed_and_prints_only_the_public_key(tmp_path):
    out = tmp_path / "keys" / "approver.key"
    result = runner.invoke(app, ["keys", "new", "--out", str(out)])
    assert result.exit_code == 0, result.output
    public_key = result.stdout.strip()
    seed = out.read_text().strip()
    assert Keypair.from_secret(seed).public_key == public_key
    assert seed not in result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in out.parent.iterdir()] == ["approver.key"]  # no temporary left behind
    again = runner.invoke(app, ["keys", "new", "--out", str(out)])
    assert again.exit_code == 2 and "already exists" in " ".join(again.stderr.split())
    assert out.read_text().strip() == seed  # never overwritten


def test_sandbox_init_makes_a_multisig_treasury_and_synth_pays_its_farmers(tmp_path):
    accounts = tmp_path / "accounts.json"
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        result = runner.invoke(
            app,
            ["sandbox", "init", "--horizon", sandbox.url, "--out", str(accounts), "--farmers", "4"]
            + ["--treasury-signers", "3", "--threshold", "2"],
        )
        assert result.exit_code == 0, result.output
        assert "3 signers, 2 needed" in " ".join(result.stderr.split())
        document = json.loads(accounts.read_text())
        assert document["treasury"]["secret"] not in result.output
        with HorizonClient(sandbox.url) as client:
            treasury = client.account(document["treasury"]["public_key"])
            assert treasury is not None
            signers = {s["key"]: s["weight"] for s in treasury.signers}
            expected = {document["treasury"]["public_key"]} | {k["public_key"] for k in document["treasury_signers"]}
            assert len(expected) == 3 and set(signers) == expected and set(signers.values()) == {1}
            assert treasury.thresholds == {"low_threshold": 2, "med_threshold": 2, "high_threshold": 2}
        # a treasury payment signed by enough of its signers lands
        fund_payout_account(sandbox.url, document, 10 * 10**7)

        refused = runner.invoke(
            app,
            ["sandbox", "init", "--horizon", sandbox.url, "--out", str(tmp_path / "b.json")]
            + ["--treasury-signers", "2", "--threshold", "3"],
        )
        assert refused.exit_code == 2 and "--threshold 3 exceeds --treasury-signers 2" in " ".join(
            refused.stderr.split()
        )

    snapshot = tmp_path / "2025-11.json"
    made = runner.invoke(
        app, ["synth", "--accounts", str(accounts), "--nodes", "20", "--format", "1", "--out", str(snapshot)]
    )
    assert made.exit_code == 0, made.output
    farmers = {f["public_key"] for f in document["farmers"]}
    addresses = {farm["stellar_address"] for farm in json.loads(snapshot.read_text())["farms"]}
    valid = {a for a in addresses if a.startswith("G") and not a.startswith("GINVALID")}
    assert valid and valid <= farmers


def test_synth_refuses_a_file_that_is_not_an_accounts_file(tmp_path):
    bad = tmp_path / "accounts.json"
    bad.write_text('{"farmers": []}')
    result = runner.invoke(app, ["synth", "--accounts", str(bad), "--out", str(tmp_path / "s.json")])
    assert result.exit_code == 2 and "no farmers" in " ".join(result.stderr.split())


def test_next_trigger_from_the_cron_setting():
    now = datetime(2026, 12, 2, 0, 46, 10, tzinfo=UTC)
    assert next_trigger("0 2 * * *", None, now) == datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    assert next_trigger("0 2 * * *", None, datetime(2026, 12, 2, 2, 0, tzinfo=UTC)) == datetime(
        2026, 12, 3, 2, 0, tzinfo=UTC
    )
    assert next_trigger("*/15 * * * *", None, now) == datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
    assert next_trigger("0 2 1 * *", None, now) == datetime(2027, 1, 1, 2, 0, tzinfo=UTC)
    assert human_utc(datetime(2026, 12, 2, 2, 0, tzinfo=UTC), now) == "Wed 2 Dec 2026 02:00 UTC (in 1 h 13 min)"


def test_runs_says_when_the_next_trigger_fires_and_how_to_go_now(monkeypatch):
    monkeypatch.setenv("PAYOUTS_SCHEDULE_CRON", "30 4 * * *")
    result = runner.invoke(app, ["runs"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stderr.split())
    assert re.search(r"next trigger: \w{3} \d+ \w{3} \d{4} 04:30 UTC \(in ", text), text
    assert "to go now: payouts run --period" in text
