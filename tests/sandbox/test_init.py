"""`payouts sandbox init` (in-process and through the CLI) and `payouts sandbox up`."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time

import httpx
import orjson
import pytest
from stellar_sdk import Asset, Keypair
from typer.testing import CliRunner

from payouts.cli.sandbox import app
from payouts.sandbox.accounts import init_sandbox
from tests.sandbox.conftest import make_net


def test_init_creates_the_accounts_and_a_private_file(sandbox, tmp_path):
    out = tmp_path / "accounts.json"
    result = init_sandbox(
        sandbox.url, out, farmers=5, without_trustline=2, channels=2, treasury_tft_units=1_000 * 10**7
    )
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    doc = orjson.loads(out.read_bytes())
    assert doc == result.document
    assert doc["network_passphrase"] == "TFT Payouts Sandbox ; 2025"
    net = make_net(sandbox)
    tft = Asset("TFT", doc["asset"]["issuer"])
    assert net.balance(_kp(doc["treasury"]), tft) == "1000.0000000"
    assert net.balance(_kp(doc["payout"]), tft) == "0.0000000"
    assert [net.balance(_kp(f), tft) is not None for f in doc["farmers"]] == [f["trustline"] for f in doc["farmers"]]
    assert [f["trustline"] for f in doc["farmers"]] == [True, True, True, False, False]
    for channel in doc["channels"]:
        assert net.account(channel["public_key"])["balances"] == [
            {
                "balance": "100.0000000",
                "buying_liabilities": "0.0000000",
                "selling_liabilities": "0.0000000",
                "asset_type": "native",
            }
        ]


def _kp(entry):
    return Keypair.from_secret(entry["secret"])


def test_init_command_keeps_secrets_off_the_terminal(sandbox, tmp_path):
    out = tmp_path / "keys.json"
    result = CliRunner().invoke(
        app, ["init", "--horizon", sandbox.url, "--out", str(out), "--farmers", "2", "--treasury-tft", "500"]
    )
    assert result.exit_code == 0, result.output
    secrets = [e["secret"] for e in orjson.loads(out.read_bytes())["farmers"]]
    assert all(secret not in result.output for secret in secrets)
    assert re.findall(r"\bS[A-Z2-7]{55}\b", result.output) == []


@pytest.mark.network  # `payouts sandbox up` serves from a subprocess
def test_up_serves_until_sigterm_and_saves_state(tmp_path):
    code = "from payouts.cli.sandbox import app; app(prog_name='payouts sandbox')"
    process = subprocess.Popen(
        [sys.executable, "-c", code, "up", "--port", "0", "--state", str(tmp_path), "--ledger-close", "0.1"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=os.getcwd(),
    )
    try:
        url = None
        deadline = time.monotonic() + 20
        while url is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
            url = match.group(1) if match else None
        assert url, "the URL was not printed"
        first = httpx.get(f"{url}/").json()["history_latest_ledger"]
        time.sleep(0.3)
        assert httpx.get(f"{url}/").json()["history_latest_ledger"] > first
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    assert (tmp_path / "ledger.sqlite3").exists()
