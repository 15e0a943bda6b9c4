"""Each owed receipt counts once everywhere, across months of held payments and their retries.

A farm whose address has no TFT trustline in 2025-01 and 2025-02 (its 2025-01 receipts are
retried in 2025-02 and held again), and a farm with no address at all (held, never retried),
paid on the sandbox by the real payment engine. After each month, `payouts held`, `payouts
status --farm`, the export's farm summary, the site's farm JSON and the outstanding query are
compared with what is owed, computed here from the receipts alone. In 2025-03 the farmer adds
the trustline: the retries are paid and settle their whole chains.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sqlmodel import Session, col, select
from stellar_sdk import Keypair
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.export.rows import ExportFilter, iter_entries
from payouts.export.server import make_server, serve_in_thread
from payouts.export.site import publish_site
from payouts.export.summary import farm_summaries
from payouts.ledger.db import make_engine, session_scope
from payouts.ledger.models import Payment, Receipt, Run
from payouts.ledger.outstanding import outstanding
from payouts.ledger.states import PaymentStatus, transition
from payouts.ledger.unit_of_work import UnitsOfWork
from payouts.money import format_tft
from payouts.periods import Period
from payouts.runs.approvals import reject_run
from payouts.runs.payment import PayConfig, PaymentEngine
from payouts.runs.service import calculate_run
from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import init_sandbox
from payouts.snapshot.load import load_snapshot
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.keys import SigningKeys
from tests import factories
from tests.export.support import HOSTILE_FARM_ID, PaidLedger, _add_trustline, _calculate_approve_pay
from tests.support.payments import check_invariants, fund_payout

runner = CliRunner()
NO_TRUSTLINE_FARM = 103  # the last sandbox farmer: no TFT trustline until 2025-03


def _owed_from_receipts(engine, farm_id: int, paid_periods: set[int]) -> tuple[int, int]:
    """(count, TFT units) owed to the farm: its rewarded receipts of the months not paid to it,
    from the receipts table alone (no payment rows, no states)."""
    with Session(engine) as session:
        rows = session.exec(
            select(Receipt.reward_tft_units, Run.period_offset)
            .join(Run, col(Run.id) == col(Receipt.run_id))
            .where(Receipt.farm_id == farm_id, Receipt.reward_tft_units > 0)
        ).all()
    owed = [units for units, offset in rows if offset not in paid_periods]
    return len(owed), sum(owed)


def _check_counted_once(paid: PaidLedger, tmp_path: Path, farm_id: int, want: tuple[int, int], label: str) -> None:
    count, units = want
    # payouts held: one entry per owed receipt
    held = json.loads(runner.invoke(app, ["held", "--json"]).stdout)
    farm_held = [h for h in held if h["farm_id"] == farm_id]
    assert len(farm_held) == count, (label, farm_held)
    assert sum(h["amount_tft_units"] for h in farm_held) == units
    assert len({h["receipt_hash"] for h in farm_held}) == count  # distinct owed receipts
    # payouts status --farm: the "not paid yet" line and the JSON's owed amounts
    status = runner.invoke(app, ["status", "--farm", str(farm_id), "--json"])
    assert status.exit_code == 0, status.output
    assert sum(e["owed_tft_units"] for e in json.loads(status.stdout)["entries"]) == units
    printed = runner.invoke(app, ["status", "--farm", str(farm_id)], env={"COLUMNS": "200"})
    assert f"not paid yet {format_tft(units)} TFT" in printed.stdout
    with Session(paid.engine) as session:
        # the outstanding query and the export's farm summary
        mine = [e for e in outstanding(session) if e.farm_id == farm_id]
        assert (len(mine), sum(e.amount_tft_units for e in mine)) == want
        summary = next(farm_summaries(session, ExportFilter(farm_id=farm_id)))
        assert summary["owed_tft_units"] == units and summary["held_tft_units"] == units
        # the export's entries
        entries = list(iter_entries(session, ExportFilter(farm_id=farm_id)))
        assert sum(e["owed_tft_units"] for e in entries) == units
        # the status site's farm shard: what its "not paid yet" adds up
        site = tmp_path / f"site-{label}"
        publish_site(session, site, network="dev", horizon_url=paid.horizon_url)
    shard = orjson.loads((site / "data" / "farms" / f"{farm_id}.json").read_bytes())
    assert sum(e["owed_tft_units"] for e in shard["entries"]) == units
    held_rows = [e for e in shard["entries"] if e["status"] == "held"]
    assert len(held_rows) == count and sum(e["amount_tft_units"] for e in held_rows) == units


@pytest.fixture
def months(ledger_url, tmp_path, monkeypatch):
    with running_sandbox(ledger_close_s=0.1, seed=29, submission_timeout_s=2) as sandbox:
        document = init_sandbox(
            sandbox.url, tmp_path / "accounts.json", farmers=4, without_trustline=1, channels=3
        ).document
        client = HorizonClient(sandbox.url, timeout_s=10)
        fund_payout(client, document, 10**6 * 10**7)
        approver = Keypair.random()
        engine = make_engine(ledger_url)
        paid = PaidLedger(ledger_url, engine, document, client, sandbox.url, {}, "per_receipt", approver)
        config = PayConfig(
            network_passphrase=document["network_passphrase"],
            asset_code=document["asset"]["code"],
            asset_issuer=document["asset"]["issuer"],
            approvers=(approver.public_key,),
            approvals_required=1,
            poll_interval_s=0.1,
            tx_timeout_s=30,
        )
        payer = PaymentEngine(
            UnitsOfWork(engine), client, SigningKeys.from_accounts_file(tmp_path / "accounts.json"), config
        )
        monkeypatch.setenv("PAYOUTS_DATABASE_URL", ledger_url)
        monkeypatch.setenv("PAYOUTS_NETWORK", "dev")
        try:
            yield paid, payer
        finally:
            client.close()
            engine.dispose()


def test_held_and_retried_receipts_count_once_everywhere_and_a_paid_retry_settles_the_chain(months, tmp_path):
    paid, payer = months
    for offset in (81, 82):
        paid.run_ids[offset] = _calculate_approve_pay(paid, payer, tmp_path, offset)
        for farm_id in (NO_TRUSTLINE_FARM, HOSTILE_FARM_ID):
            want = _owed_from_receipts(paid.engine, farm_id, paid_periods=set())
            assert want[0] == 2 * (offset - 80)  # two nodes a month, none paid yet
            _check_counted_once(paid, tmp_path, farm_id, want, f"{offset}-{farm_id}")
    with Session(paid.engine) as session:
        retries = session.exec(select(Payment).where(Payment.run_id == paid.run_ids[82], Payment.kind == "retry")).all()
        # the 2025-01 receipts of the farm without a trustline were retried in 2025-02, and held again
        assert len(retries) == 2 and {r.status for r in retries} == {"held"}
        originals = {
            e["receipt_hash"]: e
            for e in iter_entries(session, ExportFilter(farm_id=NO_TRUSTLINE_FARM, period_offset=81))
            if e["entry_kind"] == "receipt"
        }
    assert {e["status"] for e in originals.values()} == {"retried"}
    assert all("retried by the 2025-02 run" in e["status_note"] for e in originals.values())
    assert {e["retried_by_period"] for e in originals.values()} == {"2025-02"}
    held_text = runner.invoke(app, ["held"], env={"COLUMNS": "200"}).stdout
    assert "retried by the 2025-02 run" in held_text
    # the page a farmer reads: "not paid yet" in the browser is what is owed, once
    owed = _owed_from_receipts(paid.engine, NO_TRUSTLINE_FARM, paid_periods=set())[1]
    assert _site_not_paid_yet(paid, tmp_path / "site-page", NO_TRUSTLINE_FARM) == f"{format_tft(owed)} TFT"

    # 2025-03: the farmer adds the trustline; the retries of both earlier months are paid
    _add_trustline(paid.client, paid.document, paid.document["farmers"][-1])
    paid.run_ids[83] = _calculate_approve_pay(paid, payer, tmp_path, 83)
    check_invariants(paid.engine, paid.client, paid.document, paid.run_ids[83])
    assert _owed_from_receipts(paid.engine, NO_TRUSTLINE_FARM, paid_periods={81, 82, 83}) == (0, 0)
    _check_counted_once(paid, tmp_path, NO_TRUSTLINE_FARM, (0, 0), "83-settled")
    # the farm without an address still owes every month, each receipt once
    want = _owed_from_receipts(paid.engine, HOSTILE_FARM_ID, paid_periods=set())
    assert want[0] == 6
    _check_counted_once(paid, tmp_path, HOSTILE_FARM_ID, want, "83-no-address")
    with Session(paid.engine) as session:
        farm_payments = session.exec(select(Payment).where(Payment.farm_id == NO_TRUSTLINE_FARM)).all()
        # a 2025-01 original, its held 2025-02 retry and the paid 2025-03 retry of that retry
        chains = [p for p in farm_payments if p.run_id == paid.run_ids[81]]
        assert {p.status for p in chains} == {"retried"}  # settled by the retry of the retry
        assert sum(p.status == "paid" for p in farm_payments) == 2 + 2 + 2  # each receipt paid once
        entries = list(iter_entries(session, ExportFilter(farm_id=NO_TRUSTLINE_FARM, period_offset=81)))
    originals_now = [e for e in entries if e["entry_kind"] == "receipt"]
    assert all(
        "retried by the 2025-02 run" in e["status_note"] and "paid by the retry of the 2025-03 run" in e["status_note"]
        for e in originals_now
    )
    assert sorted(e["status"] for e in entries) == ["paid", "paid", "retried", "retried", "retried", "retried"]


def test_a_retry_whose_run_is_rejected_leaves_one_entry_carried_by_the_next_retry(ledger_url, tmp_path):
    """2025-01 held (no address); 2025-02 retries it and the retry is held in turn; 2025-03
    retries the retry; then 2025-02 is rejected. The receipt is still owed once, carried by the
    2025-03 retry, and the 2025-02 receipt that was never approved is owed by nobody."""
    farmer = Keypair.random().public_key

    def month(offset: int, address: str):
        farms = [
            {"farm_id": 2, "name": "two", "twin_id": 7, "certification": "NotCertified", "stellar_address": address}
        ]
        document = factories.snapshot(period_offset=offset, nodes=[factories.node(20, farm_id=2)], farms=farms)
        return load_snapshot(factories.write(tmp_path / f"m{offset}.json", document))

    db = make_engine(ledger_url)
    with session_scope(db) as session:
        first = calculate_run(session, month(81, "")).run
    with session_scope(db) as session:
        second = calculate_run(session, month(82, farmer)).run
        (retry,) = session.exec(select(Payment).where(Payment.run_id == second.id, Payment.kind == "retry")).all()
        transition(
            session,
            Payment,
            retry.id,
            PaymentStatus.PENDING,
            PaymentStatus.HELD,
            event="payment.held.preflight",
            run_id=second.id,
            hold_reason="no_trustline",
        )
    with session_scope(db) as session:
        third = calculate_run(session, month(83, farmer)).run
        (again,) = session.exec(select(Payment).where(Payment.run_id == third.id, Payment.kind == "retry")).all()
        assert again.retry_of_payment_id == retry.id
    with Session(db) as session:
        before = outstanding(session, farm_id=2)
    # 2025-01 carried by its 2025-03 retry, 2025-02 and 2025-03 each its own
    assert [(_label(e.earned_period_offset), _label(e.period_offset)) for e in before] == [
        ("2025-01", "2025-03"),
        ("2025-02", "2025-02"),
        ("2025-03", "2025-03"),
    ]
    with session_scope(db) as session:
        reject_run(session, session.get(Run, second.id), "wrong snapshot")
    with Session(db) as session:
        after = outstanding(session, farm_id=2)
        original = session.exec(select(Payment).where(Payment.run_id == first.id)).one()
        entries = list(iter_entries(session, ExportFilter(farm_id=2)))
    assert [(_label(e.earned_period_offset), e.payment_id, e.retries) for e in after] == [
        ("2025-01", again.id, 2),
        ("2025-03", after[1].payment_id, 0),
    ]
    assert after[0].receipt_hash == original.receipt_hash and after[0].amount_tft_units == original.amount_tft_units
    assert sum(e["owed_tft_units"] for e in entries) == sum(e.amount_tft_units for e in after)
    (original_entry,) = [e for e in entries if e["entry_kind"] == "receipt" and e["period"] == "2025-01"]
    assert original_entry["status"] == "retried" and original_entry["retried_by_period"] == "2025-03"


def _site_not_paid_yet(paid: PaidLedger, site: Path, farm_id: int) -> str:
    """The "not paid yet" figure of the farm's page on the published site, in headless Chromium."""
    with Session(paid.engine) as session:
        publish_site(session, site, network="dev", horizon_url=paid.horizon_url)
    server = make_server(paid.url, "127.0.0.1", 0, site, network="dev")
    thread = serve_in_thread(server)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        browser.get(f"{server.url}/#farm={farm_id}")
        WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#summary dd"))
        terms = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#summary dt")]
        values = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#summary dd")]
        return dict(zip(terms, values, strict=True))["not paid yet"]
    finally:
        browser.quit()
        server.shutdown()
        thread.join(10)
        server.engine.dispose()


def _label(offset: int) -> str:
    return Period(offset).label
