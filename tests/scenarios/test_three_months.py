"""Three months of two-tier payouts as an operator drives them through the CLI, with a 2-of-2
treasury and two approvers, and a farm whose address has no TFT trustline in months 1 and 2
and adds it in month 3.

Each month: `run --period P --in-process` (its inputs judged complete by a clock handed to the
CLI) calculates from the drop folder, `show` is reviewed, both approvers `approve`, the
treasury signers `funding export/sign/submit`, then `pay` and `reconcile` (month 1) or `run
--in-process` (pay, reconcile, sweep, export). After each month, `held`, `status --farm`, the
export's farm summary, the site's farm JSON (the one the monthly job published and one from
`publish`), the funding amount, the statement and the chain's balances are compared with
totals computed here from the ledger's canonical receipts alone (no payment rows, no states).
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from sqlmodel import Session, select
from stellar_sdk import Keypair
from typer.testing import CliRunner

from payouts.calculation.receipts import receipt_hash
from payouts.cli.main import app
from payouts.clock import FixedClock
from payouts.ledger.db import make_engine
from payouts.ledger.models import Approval, Receipt
from payouts.money import format_tft
from payouts.periods import Period
from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import init_sandbox
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.keys import write_keypair
from tests import factories
from tests.export.support import _add_trustline
from tests.support.payments import make_treasury_multisig

runner = CliRunner()
MONTHS = (81, 82, 83)  # 2025-01, 2025-02, 2025-03
HELD_FARM = 102  # the last sandbox farmer: no TFT trustline until month 3


def _cli(*args: str, clock: FixedClock | None = None, code: int = 0):
    result = runner.invoke(app, list(args), obj=clock, env={"COLUMNS": "200"})
    assert result.exit_code == code, (args, result.output)
    return result


def _json(*args: str, clock: FixedClock | None = None):
    return json.loads(_cli(*args, "--json", clock=clock).stdout)


def _tft(client: HorizonClient, account: str, asset: tuple[str, str]) -> int | None:
    info = client.account(account)
    line = info.trustline(*asset) if info is not None else None
    return line.balance_units if line is not None else None


def _drop_snapshot(folder: Path, farmers: list[dict], offset: int) -> None:
    farms = [
        {
            "farm_id": 100 + index,
            "name": f"farm {100 + index}",
            "twin_id": 7,
            "certification": "NotCertified",
            "stellar_address": farmer["public_key"],
        }
        for index, farmer in enumerate(farmers)
    ]
    nodes = [factories.node((100 + i) * 10 + n, farm_id=100 + i) for i in range(len(farmers)) for n in range(2)]
    folder.mkdir(parents=True, exist_ok=True)
    factories.write(
        folder / f"{Period(offset).label}.json", factories.snapshot(period_offset=offset, nodes=nodes, farms=farms)
    )


def _receipts(db, run_id: int) -> list[dict]:
    """The run's receipts as their canonical JSON says (each checked against its hash)."""
    with Session(db) as session:
        rows = session.exec(select(Receipt).where(Receipt.run_id == run_id)).all()
    documents = []
    for row in rows:
        assert receipt_hash(row.receipt_bytes) == row.receipt_hash
        documents.append(json.loads(row.receipt_bytes))
    return documents


def _reward(receipt: dict) -> int:
    return int(receipt["reward"]["tft"])


def test_three_months_count_each_owed_receipt_once_fund_once_and_sweep_back(monkeypatch, tmp_path, ledger_url):
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        accounts = tmp_path / "accounts.json"
        document = init_sandbox(sandbox.url, accounts, farmers=3, without_trustline=1, channels=1).document
        client = HorizonClient(sandbox.url)
        signers = [Keypair.random(), Keypair.random()]
        make_treasury_multisig(client, document, signers)
        signer_keys, approver_keys = [], []
        for index, signer in enumerate(signers):
            write_keypair(tmp_path / f"signer{index}.key", signer)
            signer_keys.append(tmp_path / f"signer{index}.key")
        approvers = [Keypair.random(), Keypair.random()]
        for index, approver in enumerate(approvers):
            write_keypair(tmp_path / f"approver{index}.key", approver)
            approver_keys.append(tmp_path / f"approver{index}.key")
        state, exports = tmp_path / "state", tmp_path / "exports"
        for key, value in {
            "PAYOUTS_DATABASE_URL": ledger_url,
            "PAYOUTS_STATE_DIR": str(state),
            "PAYOUTS_EXPORT_DIR": str(exports),
            "PAYOUTS_FIRST_PERIOD": Period(MONTHS[0]).label,
            "PAYOUTS_NETWORK": "dev",
            "PAYOUTS_STELLAR_ACCOUNTS_FILE": str(accounts),
            "PAYOUTS_HORIZON_URL": sandbox.url,
            "PAYOUTS_APPROVERS": ",".join(a.public_key for a in approvers),
            "PAYOUTS_APPROVALS_REQUIRED": "2",
            "PAYOUTS_TWO_TIER": "true",
            "PAYOUTS_TREASURY_ACCOUNT": document["treasury"]["public_key"],
            "PAYOUTS_TX_TIMEOUT_S": "30",
        }.items():
            monkeypatch.setenv(key, value)
        asset = (document["asset"]["code"], document["asset"]["issuer"])
        payout, treasury = document["payout"]["public_key"], document["treasury"]["public_key"]
        farmers = {100 + i: f["public_key"] for i, f in enumerate(document["farmers"])}
        assert not document["farmers"][HELD_FARM - 100]["trustline"]
        db = make_engine(ledger_url)
        farmers_before = {farm: _tft(client, address, asset) or 0 for farm, address in farmers.items()}
        treasury_start = _tft(client, treasury, asset)
        assert treasury_start is not None
        assert not _tft(client, payout, asset)  # the hot account starts empty

        owed_receipts: list[dict] = []  # the held farm's receipts not paid yet, oldest first
        paid_to = dict.fromkeys(farmers, 0)  # expected, from the receipts
        for month, offset in enumerate(MONTHS, start=1):
            label = Period(offset).label
            clock = FixedClock(datetime.fromtimestamp(Period(offset).window_end_ts, UTC))
            if month == 3:  # the farmer fixes the wallet before month 3 is paid
                _add_trustline(client, document, document["farmers"][HELD_FARM - 100])
            _drop_snapshot(state / "snapshots", document["farmers"], offset)
            # the next month is not due by this clock: refused, saying when
            later = Period(offset + 1)
            _drop_snapshot(state / "snapshots", document["farmers"], later.offset)
            early = _cli("run", "--period", later.label, "--in-process", clock=clock, code=3)
            assert f"{later.label} ends" in early.stderr and "inputs are complete after" in early.stderr
            (state / "snapshots" / f"{later.label}.json").unlink()

            step = _json("run", "--period", label, "--in-process", clock=clock)
            run_id = step["run_id"]
            assert "calculate" in step["did"] and step["status"] == "calculated", step

            # expected totals from the receipts alone
            receipts = [r for r in _receipts(db, run_id) if _reward(r) > 0]
            assert {int(r["farm_id"]) for r in receipts} == set(farmers)
            new_units = sum(_reward(r) for r in receipts)
            retries_units = sum(_reward(r) for r in owed_receipts)  # what earlier months still owe
            run_total = new_units + retries_units
            held_new = [r for r in receipts if int(r["farm_id"]) == HELD_FARM]
            if month < 3:
                owed_receipts += held_new
                held_units = sum(_reward(r) for r in owed_receipts)
                for r in receipts:
                    if int(r["farm_id"]) != HELD_FARM:
                        paid_to[int(r["farm_id"])] += _reward(r)
            else:
                held_units = 0
                for r in receipts:
                    paid_to[int(r["farm_id"])] += _reward(r)
                paid_to[HELD_FARM] += retries_units
                owed_receipts = []
            paid_units = run_total - held_units

            # the review is what is signed: sections add up to the manifest, retries included
            review = _json("show", str(run_id))
            sections = {s["kind"]: s for s in review["sections"]}
            assert sum(s["tft_units"] for s in review["sections"]) == review["manifest_total_tft_units"] == run_total
            assert sections.get("retry", {"tft_units": 0})["tft_units"] == retries_units
            assert sections.get("retry", {"payments": 0})["payments"] == (0, 2, 4)[month - 1]
            assert review["period_month"] == datetime.strptime(label, "%Y-%m").strftime("%B %Y")
            for key in approver_keys:
                _cli("approve", str(run_id), "-k", str(key), "-y")
            with Session(db) as session:
                signed = [json.loads(a.manifest_json) for a in session.exec(select(Approval)).all()]
            signed = [m for m in signed if m["run_id"] == run_id]
            assert len(signed) == 2 and all(m == signed[0] for m in signed)
            assert signed[0]["total_tft_units"] == run_total
            assert signed[0]["payment_count"] == sum(s["payments"] for s in review["sections"])
            waiting = _json("run", "--period", label, "--in-process", clock=clock)
            assert waiting["status"] == "approved" and "funding" in waiting["waits_for"], waiting

            # funding: exactly the run's total, retries once, signed 2 of 2
            funding_file = tmp_path / f"funding-{label}.json"
            _cli("funding", "export", str(run_id), "--out", str(funding_file))
            for key in signer_keys:
                _cli("funding", "sign", str(funding_file), "-k", str(key), "-y")
            assert "funded" in _cli("funding", "submit", str(funding_file)).stderr
            funding = json.loads(funding_file.read_text())
            assert funding["amount_tft_units"] == run_total
            signed_bytes = json.dumps(signed[0], sort_keys=True, separators=(",", ":")).encode()
            assert funding["manifest_sha256"] == hashlib.sha256(signed_bytes).hexdigest()
            assert _tft(client, payout, asset) == run_total
            assert _tft(client, treasury, asset) == treasury_start - sum(paid_to.values()) + paid_units - run_total

            if month == 1:  # by hand: pay, reconcile (and sweep), then the run exports
                _cli("pay", str(run_id))
                reconciled = _json("reconcile", "--period", label)
                assert reconciled["clean"] and reconciled["sweep"]["state"] == "swept", reconciled
                exported = _json("run", "--period", label, "--in-process", clock=clock)
                assert exported["did"] == ["export"] and exported["status"] == "exported", exported
            else:  # the monthly job's way: pay, reconcile, sweep, export in one call
                moved = _json("run", "--period", label, "--in-process", clock=clock)
                assert moved["did"] == ["pay", "reconcile", "export"] and moved["status"] == "exported", moved
            again = _json("reconcile", "--period", label)
            assert again["clean"] and again["payout_surplus_tft_units"] == 0
            assert again["sweep"]["state"] == ("already swept" if held_units else "nothing to sweep"), again
            assert again["sweep"]["amount_tft_units"] == held_units

            # chain truth: the hot account holds nothing once reconciled (nothing is in flight),
            # the treasury paid out what reached farmers, each farmer got what the receipts say
            assert _tft(client, payout, asset) == 0
            assert _tft(client, treasury, asset) == treasury_start - sum(paid_to.values())
            for farm, address in farmers.items():
                got = (_tft(client, address, asset) or 0) - farmers_before[farm]
                assert got == paid_to[farm], (label, farm, got, paid_to[farm])
            runs = {row["run_id"]: row for row in _json("runs")}
            assert runs[run_id]["payments"]["paid_tft_units"] == paid_units
            assert runs[run_id]["payments"]["held_tft_units"] == held_units  # not paid by this run
            assert runs[run_id]["payments"]["pending_count"] == 0
            assert "no open run needs" not in _cli("runs").stderr

            # what is owed, counted once everywhere
            owed_count, owed_units = len(owed_receipts), held_units
            _check_owed(exports, tmp_path / f"site-{label}", owed_count, owed_units, label)
            if month == 2:
                assert "retried by the 2025-02 run" in _cli("held").stdout

            # the statement balances, and says what the receipts say
            statement = _json("statement", "--period", label)
            assert statement["balances"] is True, statement
            assert statement["owed_difference_units"] == 0 and statement["tft_difference_units"] == 0
            assert statement["new_units"] == new_units and statement["retries_units"] == retries_units
            assert statement["paid_units"] == paid_units and statement["held_out_units"] == held_units
            assert statement["funding_in_units"] == run_total and statement["swept_back_units"] == held_units
            assert statement["payout_change_units"] == 0
            beside = json.loads((exports / label / f"statement-{label}.json").read_text())
            # the monthly job's exports, one per period (by the period a receipt was earned in):
            # together they owe what is owed, and an earlier period's file is refreshed when a
            # later run pays its retries
            written_owed = 0
            for earned in MONTHS[:month]:
                earned_label = Period(earned).label
                written = json.loads((exports / earned_label / f"payouts-{earned_label}.json").read_text())
                mine = [e for e in written["entries"] if e["farm_id"] == HELD_FARM]
                written_owed += sum(e["owed_tft_units"] for e in mine)
                fresh = json.loads(_cli("export", "--period", earned_label, "--format", "json").stdout)
                assert [(e["receipt_hash"], e["status"], e["owed_tft_units"]) for e in mine] == [
                    (e["receipt_hash"], e["status"], e["owed_tft_units"])
                    for e in fresh["entries"]
                    if e["farm_id"] == HELD_FARM
                ], (label, earned_label)
            assert written_owed == held_units, label
            assert beside["balances"] and beside["paid_units"] == paid_units

        # three months: the held farm was paid each receipt once (month 1's original, its month-2
        # retry and the month-3 retry of that retry settle once), nothing left owed
        with Session(db) as session:
            held_farm_receipts = session.exec(select(Receipt).where(Receipt.farm_id == HELD_FARM)).all()
        assert paid_to[HELD_FARM] == sum(r.reward_tft_units for r in held_farm_receipts) > 0
        assert (_tft(client, farmers[HELD_FARM], asset) or 0) == paid_to[HELD_FARM]
        to_farmer = [
            r
            for r in client.payments(farmers[HELD_FARM])
            if r.get("type") == "payment" and r.get("to") == farmers[HELD_FARM]
        ]
        assert len(to_farmer) == len(held_farm_receipts)
        # every month's statement still balances once later months retried and settled its entries
        for offset in MONTHS:
            later = _json("statement", "--period", Period(offset).label)
            assert later["balances"] and later["owed_difference_units"] == 0 and later["tft_difference_units"] == 0
        db.dispose()
        client.close()


def _check_owed(exports: Path, site: Path, count: int, units: int, label: str) -> None:
    held = [h for h in _json("held") if h["farm_id"] == HELD_FARM]
    assert len(held) == count and sum(h["amount_tft_units"] for h in held) == units, (label, held)
    assert len({h["receipt_hash"] for h in held}) == count
    status = runner.invoke(app, ["status", "--farm", str(HELD_FARM), "--json"])
    assert status.exit_code == 0, status.output
    assert sum(e["owed_tft_units"] for e in json.loads(status.stdout)["entries"]) == units, label
    printed = _cli("status", "--farm", str(HELD_FARM))
    assert f"not paid yet {format_tft(units)} TFT" in printed.stdout, (label, printed.stdout)
    summary_file = site.with_name(f"farms-{label}.json")
    _cli("export", "--summary", "farms", "--format", "json", "--out", str(summary_file))
    (summary,) = [s for s in json.loads(summary_file.read_text())["entries"] if s["farm_id"] == HELD_FARM]
    assert summary["owed_tft_units"] == units and summary["held_tft_units"] == units, (label, summary)
    _cli("publish", "--out", str(site))
    for published in (site, exports / "site"):  # `publish`, and the monthly job's export step
        shard = json.loads((published / "data" / "farms" / f"{HELD_FARM}.json").read_text())
        assert sum(e["owed_tft_units"] for e in shard["entries"]) == units, (label, published)
        held_rows = [e for e in shard["entries"] if e["status"] == "held"]
        assert len(held_rows) == count and sum(e["amount_tft_units"] for e in held_rows) == units
        periods = json.loads((published / "data" / "periods.json").read_text())
        assert sum(p.get("owed_tft_units", 0) for p in periods) == units, (label, periods)
        assert sum(p.get("held_tft_units", 0) for p in periods) == units, (label, periods)
    # each node-month's events, read from the frozen snapshots: the same from both paths, and
    # there for every month calculated so far
    reconciled_nodes = sorted((exports / "site" / "data" / "nodes").glob("*.json"))
    assert reconciled_nodes and [p.name for p in reconciled_nodes] == sorted(
        p.name for p in (site / "data" / "nodes").glob("*.json")
    )
    for node_file in reconciled_nodes:
        by_monthly_job = json.loads(node_file.read_text())["events"]
        by_publish = json.loads((site / "data" / "nodes" / node_file.name).read_text())["events"]
        assert by_monthly_job == by_publish, (label, node_file.name)
        assert label in by_publish and all("items" in month for month in by_publish.values()), (label, by_publish)
