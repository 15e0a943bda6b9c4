"""The farmer export against the ledger and the chain, after two periods paid on the sandbox,
in both memo modes, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime

import pytest
from sqlmodel import Session, select
from stellar_sdk import Keypair
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.ledger.models import Payment, Receipt, Run
from payouts.money import format_tft
from payouts.stellar.merkle import merkle_root, verify_inclusion
from tests.export.support import HOSTILE_FARM_ID, LOW_UPTIME_NODE, paid_ledger

runner = CliRunner()
TFT_TEXT = re.compile(r"^\d+\.\d{7}$")


@pytest.fixture(params=["per_receipt", "batch"])
def paid(request, ledger_url, tmp_path, monkeypatch):
    with paid_ledger(ledger_url, tmp_path, request.param) as ledger:
        monkeypatch.setenv("PAYOUTS_DATABASE_URL", ledger_url)
        monkeypatch.setenv("PAYOUTS_NETWORK", "dev")
        monkeypatch.setenv("PAYOUTS_HORIZON_URL", ledger.horizon_url)
        yield ledger


def _export(*args: str) -> dict:
    result = runner.invoke(app, ["export", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _utc(text: str) -> datetime:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text)


def test_every_entry_matches_the_ledger_and_the_chain(paid):
    document = _export()
    entries = document["entries"]
    with Session(paid.engine) as session:
        receipts = {r.receipt_hash: r for r in session.exec(select(Receipt)).all()}
        receipts_by_id = {r.id: r for r in receipts.values()}
        payments = {p.receipt_hash: p for p in session.exec(select(Payment)).all()}
        runs = {r.id: r for r in session.exec(select(Run)).all()}

    # every receipt once as its own entry, and every retry as an entry of its own
    own = [e for e in entries if e["entry_kind"] == "receipt"]
    assert sorted(e["receipt_hash"] for e in own) == sorted(receipts)
    retries = [e for e in entries if e["entry_kind"] == "retry"]
    assert len(retries) == 2 and len(entries) == len(receipts) + 2

    chain = {}
    for entry in entries:
        # a retry entry carries the retry receipt's hash; its node data is the original receipt's
        receipt = receipts.get(entry["receipt_hash"]) or receipts_by_id[payments[entry["receipt_hash"]].receipt_id]
        run = runs[receipt.run_id]
        assert (entry["node_id"], entry["farm_id"], entry["farm_name"]) == (
            receipt.node_id,
            receipt.farm_id,
            receipt.farm_name,
        )
        assert entry["period_start"] == datetime.fromtimestamp(run.period_start_ts, UTC).isoformat().replace(
            "+00:00", "Z"
        )
        assert entry["run_id"] == run.id and entry["code_version"] == run.code_version
        assert entry["reward_musd"] == receipt.reward_musd and entry["reward_tft_units"] == receipt.reward_tft_units
        assert entry["reward_tft"] == format_tft(receipt.reward_tft_units) and TFT_TEXT.match(entry["amount_tft"])
        assert entry["eligibility"] == receipt.eligibility and entry["reason"] == receipt.reason
        assert (entry["cu_pm"], entry["su_pm"], entry["measured_uptime_s"]) == (
            receipt.cu_pm,
            receipt.su_pm,
            receipt.measured_uptime_s,
        )
        assert entry["uptime_percent"] == f"{receipt.uptime_permille // 10}.{receipt.uptime_permille % 10}"
        assert entry["cru"] == "4.0" and entry["mru_gib"] == "16.0" and entry["currency"] == "TFT"
        payment = payments.get(entry["receipt_hash"])
        if payment is None:
            assert entry["status"] == "calculated" and entry["amount_tft_units"] == 0
            continue
        assert entry["amount_tft_units"] == payment.amount_tft_units
        assert entry["amount_tft"] == format_tft(payment.amount_tft_units)
        assert entry["payout_basis"] == payment.payout_basis == "poc_treasury"
        assert entry["payout_address"] == payment.destination
        assert entry["status"] == payment.status
        if payment.status != "paid":
            assert entry["stellar_tx_hash"] is None and entry["paid_at"] is None
            continue
        # paid: the transaction on chain, paid_at its ledger close time, the memo its memo
        info = chain.get(payment.tx_hash) or chain.setdefault(payment.tx_hash, paid.client.transaction(payment.tx_hash))
        assert entry["stellar_tx_hash"] == payment.tx_hash == info.tx_hash and info.successful
        assert entry["stellar_ledger"] == info.ledger
        assert _utc(entry["paid_at"]) == info.closed_at.astimezone(UTC)
        memo = base64.b64decode(info.memo).hex()
        assert entry["memo"] == memo
        if paid.memo_mode == "per_receipt":
            assert memo == entry["receipt_hash"] and entry["merkle_proof"] is None
        else:
            path = [bytes.fromhex(node) for node in entry["merkle_proof"]]
            assert verify_inclusion(
                entry["receipt_hash"], entry["merkle_leaf_index"], entry["merkle_tree_size"], path, bytes.fromhex(memo)
            )
            # a proof for another leaf index does not verify: the check can fail
            assert not verify_inclusion(
                entry["receipt_hash"],
                (entry["merkle_leaf_index"] + 1) % 7,
                max(entry["merkle_tree_size"], 7),
                path,
                bytes.fromhex(memo),
            )
    assert chain, "nothing was paid"
    if paid.memo_mode == "batch":
        assert any(e["merkle_tree_size"] and e["merkle_tree_size"] > 1 for e in entries)

    # held: what to fix and when the retry runs; retried originals name their paid retry
    held = [e for e in entries if e["status"] == "held"]
    assert {e["farm_id"] for e in held} == {HOSTILE_FARM_ID} and len(held) == 4
    for entry in held:
        assert entry["hold_reason"] == "no_address"
        assert entry["what_to_fix"] == "set a valid Stellar payout address (G...) on the farm"
        assert entry["next_retry_period"] == "2025-03" and "2025-03" in entry["status_note"]
    retried = {e["receipt_hash"] for e in entries if e["status"] == "retried"}
    assert len(retried) == 2 and {e["retry_of"] for e in retries} == retried
    assert all(e["status"] == "paid" and e["paying_period"] == "2025-02" and e["period"] == "2025-01" for e in retries)
    zero = [e for e in entries if e["node_id"] == LOW_UPTIME_NODE]
    assert [e["status_note"] for e in zero] == ["nothing to pay: uptime 90.0 % is below the 95 % DIY minimum"] * 2

    # the signed manifests: SHA-256, the approver's signature, and the root of the entries
    assert [r["period"] for r in document["runs"]] == ["2025-01", "2025-02"]
    for run in document["runs"]:
        manifest_bytes = run["manifest_json"].encode()
        assert hashlib.sha256(manifest_bytes).hexdigest() == run["manifest_sha256"]
        [approval] = run["approvals"]
        assert approval["approver_public_key"] == paid.approver.public_key
        Keypair.from_public_key(approval["approver_public_key"]).verify(
            hashlib.sha256(manifest_bytes).digest(), base64.b64decode(approval["signature_b64"])
        )
        in_manifest = [e for e in entries if e["in_manifest"] and e["paying_run_id"] == run["run_id"]]
        assert run["manifest"]["receipts_merkle_root"] == merkle_root([e["receipt_hash"] for e in in_manifest]).hex()
        assert run["manifest"]["payment_count"] == len(in_manifest)
        assert run["manifest"]["total_tft_units"] == sum(e["amount_tft_units"] for e in in_manifest)


def test_csv_and_jsonl_carry_the_same_entries_and_filters_select_the_right_ones(paid):
    full = _export()["entries"]
    as_csv = runner.invoke(app, ["export", "--format", "csv", "--columns", "full"])
    assert as_csv.exit_code == 0
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(rows) == len(full)
    for row, entry in zip(rows, full):
        assert row["receipt_hash"] == entry["receipt_hash"] and row["amount_tft"] == entry["amount_tft"]
        assert row["paid_at"] == (entry["paid_at"] or "") and row["status"] == entry["status"]
        assert row["merkle_proof"] == " ".join(entry["merkle_proof"] or [])
    lines = runner.invoke(app, ["export", "--format", "jsonl"]).stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["record"] for r in records[:3]] == ["header", "run", "run"]
    assert [r["receipt_hash"] for r in records[3:]] == [e["receipt_hash"] for e in full]

    address = paid.document["farmers"][1]["public_key"]
    paid_hash = next(e["receipt_hash"] for e in full if e["status"] == "paid")
    cases = {
        ("--node", "1010"): lambda e: e["node_id"] == 1010,
        ("--farm", "103"): lambda e: e["farm_id"] == 103,
        ("--address", address): lambda e: e["payout_address"] == address,
        ("--period", "2025-02"): lambda e: e["period"] == "2025-02",
        ("--receipt", paid_hash): lambda e: e["receipt_hash"] == paid_hash or e["memo"] == paid_hash,
    }
    for args, wanted in cases.items():
        selected = _export(*args)["entries"]
        expected = [e for e in full if wanted(e)]
        assert selected and [e["receipt_hash"] for e in selected] == [e["receipt_hash"] for e in expected], args
    if paid.memo_mode == "batch":  # a memo (Merkle root) finds every receipt of its transaction
        memo = next(e["memo"] for e in full if e["merkle_tree_size"] and e["merkle_tree_size"] > 1)
        by_memo = _export("--receipt", memo)["entries"]
        assert len(by_memo) == next(e["merkle_tree_size"] for e in full if e["memo"] == memo)
