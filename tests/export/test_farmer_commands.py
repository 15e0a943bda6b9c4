"""`payouts status`, `payouts correct`, `payouts farms import` and `payouts export --summary farms`
on a ledger with two periods paid on the sandbox (batch memos)."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.ledger.models import FarmSignon, LedgerEvent, Payment
from payouts.money import format_tft
from tests.export.support import HOSTILE_FARM_ID, HOSTILE_FARM_NAME, LOW_UPTIME_NODE

runner = CliRunner()


@pytest.fixture(autouse=True)
def _ledger_env(published, monkeypatch):
    _site, url, paid, _entries = published
    monkeypatch.setenv("PAYOUTS_DATABASE_URL", url)
    monkeypatch.setenv("PAYOUTS_NETWORK", "dev")
    monkeypatch.setenv("PAYOUTS_HORIZON_URL", paid.horizon_url)


def _status(*args: str) -> tuple[int, dict]:
    result = runner.invoke(app, ["status", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def _entries(*args: str) -> list[dict]:
    result = runner.invoke(app, ["export", "--format", "json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["entries"]


def test_status_says_per_period_why_how_much_and_whether_it_is_paid(published):
    _site, _url, _paid, entries = published
    code, held = _status("--node", str(HOSTILE_FARM_ID * 10))
    assert code == 0 and [e["period"] for e in held["entries"]] == ["2025-01", "2025-02"]
    for entry in held["entries"]:
        assert entry["status"] == "held" and entry["why"] == "no payout address set on the farm"
        assert entry["eligible"] is True and entry["stellar_tx_hash"] is None and entry["paid_at"] is None
        assert "retries it" in entry["note"] and entry["what_to_fix"].startswith("set a valid Stellar payout address")

    code, low = _status("--node", str(LOW_UPTIME_NODE))
    assert {e["why"] for e in low["entries"]} == {"uptime 90.0 % is below the 95 % DIY minimum"}
    assert {e["eligible"] for e in low["entries"]} == {False} and {e["reward_tft"] for e in low["entries"]} == {
        "0.0000000"
    }

    code, trustline = _status("--farm", "103", "--period", "2025-01")
    originals = [e for e in trustline["entries"] if e["entry_kind"] == "receipt"]
    assert {e["why"] for e in originals} == {"the address has no TFT trustline"}
    assert {e["status"] for e in originals} == {"retried"}
    assert {e["status"] for e in trustline["entries"] if e["entry_kind"] == "retry"} == {"paid"}

    paid_entry = next(e for e in entries if e["status"] == "paid")
    code, by_receipt = _status("--receipt", paid_entry["receipt_hash"])
    [answer] = [e for e in by_receipt["entries"] if e["receipt_hash"] == paid_entry["receipt_hash"]]
    assert answer["stellar_tx_hash"] == paid_entry["stellar_tx_hash"] and answer["paid_at"] == paid_entry["paid_at"]

    address = _paid_address(published)
    code, by_address = _status("--address", address)
    assert code == 0 and {e["payout_address"] for e in by_address["entries"]} == {address}

    # the readable table: the hostile name as text, the words, and the totals line
    table = runner.invoke(app, ["status", "--farm", str(HOSTILE_FARM_ID)], env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    assert "no payout address set on the farm" in table.stdout and "held" in table.stdout
    assert "<img src=x" in table.stdout and "not paid yet 723.0500000 TFT" in table.stdout.replace("\n", " ")

    low_table = runner.invoke(app, ["status", "--node", str(LOW_UPTIME_NODE)], env={"COLUMNS": "250"})
    assert "not rewarded: uptime too low" in low_table.stdout and "below_sla" not in low_table.stdout

    assert runner.invoke(app, ["status", "--node", "424242"]).exit_code == 1
    assert runner.invoke(app, ["status", "--node", "1", "--farm", "2"]).exit_code == 2


def _paid_address(published) -> str:
    return published[2].document["farmers"][2]["public_key"]


def test_a_correction_is_a_new_entry_and_never_edits_the_corrected_payment(published, monkeypatch):
    _site, url, _paid, entries = published
    target = next(e for e in entries if e["status"] == "paid" and e["node_id"] == 1000 and e["period"] == "2025-02")
    from payouts.ledger.db import make_engine

    engine = make_engine(url)
    with Session(engine) as session:
        before = session.exec(select(Payment).where(Payment.receipt_hash == target["receipt_hash"])).one()

    refusals = {"0": "records nothing", "-1": "negative", "1.12345678": "at most 7 decimals", "abc": "not a TFT amount"}
    for amount, words in refusals.items():
        refused = runner.invoke(app, ["correct", target["receipt_hash"], "--amount", amount, "--reason", "x"])
        assert refused.exit_code == 2 and words in refused.stderr, (amount, refused.stderr)
    assert (
        "needs a reason"
        in runner.invoke(app, ["correct", target["receipt_hash"], "--amount", "1", "--reason", " "]).stderr
    )
    assert "no receipt" in runner.invoke(app, ["correct", "ab" * 32, "--amount", "1", "--reason", "x"]).stderr
    monkeypatch.setenv("PAYOUTS_CAP_NODE_TFT_UNITS", str(10 * 10**7))
    over = runner.invoke(app, ["correct", target["receipt_hash"], "--amount", "10.0000001", "--reason", "x"])
    assert over.exit_code == 2 and "over the per-node cap" in over.stderr

    recorded = runner.invoke(
        app, ["correct", target["receipt_hash"], "--amount", "2.5", "--reason", "late uptime", "--json"]
    )
    assert recorded.exit_code == 0, recorded.output
    document = json.loads(recorded.stdout)
    assert (
        document["amount_tft_units"] == 25_000_000
        and document["idempotency_key"] == f"correction:{target['receipt_hash']}:1"
    )
    # corrected once: a second correction of the same receipt is refused, naming the first
    twice = runner.invoke(
        app, ["correct", target["receipt_hash"], "--amount", "1", "--reason", "again", "--by", "bo", "--json"]
    )
    assert twice.exit_code == 2 and twice.stdout == ""
    assert "already corrected" in twice.stderr and "2.5000000 TFT" in twice.stderr
    assert "'late uptime'" in twice.stderr and "--again" in twice.stderr
    second = json.loads(
        runner.invoke(
            app,
            [
                "correct",
                target["receipt_hash"],
                "--amount",
                "1",
                "--reason",
                "again",
                "--again",
                "--by",
                "bo",
                "--json",
            ],
        ).stdout
    )
    assert second["idempotency_key"].endswith(":2") and second["correction_hash"] != document["correction_hash"]
    listed = json.loads(runner.invoke(app, ["corrections", "--receipt", target["receipt_hash"], "--json"]).stdout)
    assert [(c["amount_tft"], c["reason"], c["recorded_by"], c["state"]) for c in listed] == [
        ("2.5000000", "late uptime", listed[0]["recorded_by"], "recorded: joins the next run"),
        ("1.0000000", "again", "bo", "recorded: joins the next run"),
    ]
    assert {c["corrects_receipt_hash"] for c in listed} == {target["receipt_hash"]}

    with Session(engine) as session:
        after = session.exec(select(Payment).where(Payment.receipt_hash == target["receipt_hash"])).one()
        correction = session.get(Payment, document["payment_id"])
        events = session.exec(
            select(LedgerEvent).where(
                LedgerEvent.entity_id == correction.id, LedgerEvent.event == "payment.correction.recorded"
            )
        ).all()
    assert after.model_dump() == before.model_dump()  # history untouched
    assert (correction.kind, correction.payout_basis, correction.status, correction.in_manifest) == (
        "correction",
        "correction",
        "pending",
        False,
    )
    assert correction.correction_of_payment_id == before.id and correction.run_id == before.run_id
    assert correction.destination == before.destination and len(events) == 1
    engine.dispose()

    node = _entries("--node", "1000", "--period", "2025-02")
    assert [e["status"] for e in node if e["entry_kind"] == "receipt"] == ["corrected"]
    corrections = [e for e in node if e["entry_kind"] == "correction"]
    assert [(e["amount_tft"], e["correction_of"], e["payout_basis"], e["status"]) for e in corrections] == [
        ("2.5000000", target["receipt_hash"], "correction", "calculated"),
        ("1.0000000", target["receipt_hash"], "correction", "calculated"),
    ]
    assert "late uptime" in corrections[0]["status_note"] and "joins the next run" in corrections[0]["status_note"]


def test_farm_signons_are_imported_and_exported_with_farm_totals(published, tmp_path):
    _site, url, _paid, _published_entries = published
    signons = tmp_path / "signons.csv"
    signons.write_text(
        "farm_id,contact_confirmed_at,sla_accepted_at\n101,2025-11-03T10:00:00Z,\n102,2025-11-04,2025-11-05T08:30:00+02:00\n"
    )
    first = runner.invoke(app, ["farms", "import", str(signons)])
    assert first.exit_code == 0 and "2 added" in first.stderr
    again = runner.invoke(app, ["farms", "import", str(signons)])
    assert "0 added, 0 updated, 2 unchanged" in again.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("farm_id,contact_confirmed_at,sla_accepted_at\n101,2025-11-03T10:00:00,\n")
    refused = runner.invoke(app, ["farms", "import", str(bad)])
    assert refused.exit_code == 2 and "line 2" in refused.stderr and "no time zone" in refused.stderr
    from payouts.ledger.db import make_engine

    engine = make_engine(url)
    with Session(engine) as session:
        assert session.exec(select(FarmSignon).where(FarmSignon.farm_id == 101)).one().sla_accepted_at is None
    engine.dispose()

    exported = _entries("--farm", "102")
    assert {(e["farm_contact_confirmed_at"], e["farm_sla_accepted_at"]) for e in exported} == {
        ("2025-11-04T00:00:00Z", "2025-11-05T06:30:00Z")
    }
    assert {e["v4_account"] for e in _entries("--node", "1021")} == {"GV4ACCOUNT"}

    summary = runner.invoke(app, ["export", "--summary", "farms", "--format", "json"])
    assert summary.exit_code == 0, summary.output
    farms = {f["farm_id"]: f for f in json.loads(summary.stdout)["entries"]}
    fresh = _entries()
    for farm_id, farm in farms.items():
        mine = [e for e in fresh if e["farm_id"] == farm_id]
        paid_units = sum(e["amount_tft_units"] for e in mine if e["paid_at"])
        held_units = sum(e["amount_tft_units"] for e in mine if e["status"] == "held")
        pending_units = sum(
            e["amount_tft_units"] for e in mine if e["status"] in ("calculated", "approved", "submitted")
        )
        assert farm["paid_tft_units"] == paid_units, farm_id
        assert farm["held_tft_units"] == held_units and farm["held_tft"] == format_tft(held_units)
        assert farm["owed_tft_units"] == held_units + pending_units, farm_id
    assert farms[HOSTILE_FARM_ID]["farm_name"] == HOSTILE_FARM_NAME and farms[HOSTILE_FARM_ID]["paid_tft_units"] == 0
    assert farms[HOSTILE_FARM_ID]["held_tft_units"] == 4 * 1_807_625_000
    assert farms[102]["sla_accepted_at"] == "2025-11-05T06:30:00Z"
    assert farms[102]["paid_poc_treasury_tft_units"] == farms[102]["paid_tft_units"] > 0
    # the correction recorded by the site fixture (node 1020, farm 102) is owed under its own basis
    assert farms[102]["owed_correction_tft_units"] == 5 * 10**7
    as_csv = runner.invoke(app, ["export", "--summary", "farms", "--format", "csv"]).stdout
    assert as_csv.splitlines()[0].startswith("farm_id,farm_name,owed_tft_units")


def test_the_farmer_csv_has_a_short_column_set_and_the_full_one_on_request(published):
    import csv
    import io

    from payouts.export.rows import FARMER_FIELDS, FIELDS

    _site, _url, _paid, entries = published
    short = runner.invoke(app, ["export", "--farm", "102"])
    assert short.exit_code == 0, short.output
    rows = list(csv.reader(io.StringIO(short.stdout)))
    assert rows[0] == list(FARMER_FIELDS) and len(FARMER_FIELDS) < len(FIELDS) // 2
    assert "amount_tft_units" not in rows[0] and "merkle_proof" not in rows[0]  # no raw units beside display values
    wanted = [e for e in entries if e["farm_id"] == 102]
    assert [r[FARMER_FIELDS.index("receipt_hash")] for r in rows[1:]] == [e["receipt_hash"] for e in wanted]
    assert [r[FARMER_FIELDS.index("payout_address")] for r in rows[1:]] == [e["payout_address"] for e in wanted]
    full = runner.invoke(app, ["export", "--farm", "102", "--columns", "full"])
    assert next(csv.reader(io.StringIO(full.stdout))) == list(FIELDS)
    refused = runner.invoke(app, ["export", "--columns", "wide"])
    assert refused.exit_code == 2 and "--columns takes 'farmer' or 'full'" in refused.stderr
    assert "Traceback" not in refused.output
