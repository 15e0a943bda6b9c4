"""A farm's summary is exact when its payments add up past 64 bits (each payment fits a
Stellar int64; their sum need not), on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json

import pytest
from sqlmodel import Session

from payouts.export.rows import ExportFilter, runs_document
from payouts.export.summary import farm_summaries
from payouts.export.writers import write_export
from payouts.ledger.models import Payment, Run
from payouts.ledger.types import utcnow

LARGEST_PAYMENT = 2**63 - 1  # the largest Stellar payment, in units


def _record_a_run_owing_past_64_bits(session: Session) -> None:
    now = utcnow()
    run = Run(
        period_offset=81,
        period_start_ts=1,
        period_end_ts=2,
        network="dev",
        snapshot_sha256="ab" * 32,
        code_version="test",
        status="approved",
        total_musd=0,
        total_tft_units=3 * LARGEST_PAYMENT,
        payable_tft_units=3 * LARGEST_PAYMENT,
        node_count=3,
        rewarded_node_count=3,
        report_json="{}",
    )
    session.add(run)
    session.flush()
    for node_id, status in ((1, "pending"), (2, "pending"), (3, "held")):
        session.add(
            Payment(
                run_id=run.id,
                kind="receipt",
                idempotency_key=f"receipt:{run.id}:{node_id}",
                receipt_hash=f"{node_id:064x}",
                farm_id=42,
                node_id=node_id,
                destination="G" + "A" * 55,
                amount_tft_units=LARGEST_PAYMENT,
                status=status,
                in_manifest=status == "pending",
                created_at=now,
                updated_at=now,
            )
        )
    session.commit()


def test_a_farm_owed_past_64_bits_is_summed_exactly(session: Session):
    _record_a_run_owing_past_64_bits(session)
    [farm] = list(farm_summaries(session))
    assert farm["farm_id"] == 42 and farm["payments"] == 3
    assert farm["owed_tft_units"] == 3 * LARGEST_PAYMENT
    assert farm["held_tft_units"] == LARGEST_PAYMENT
    assert farm["paid_tft_units"] == 0


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_totals_past_64_bits_are_written_exactly_in_json_exports(session: Session, fmt):
    _record_a_run_owing_past_64_bits(session)
    out = io.StringIO()
    runs = runs_document(session, ExportFilter())
    count = write_export(fmt, {"format": "test", "note": "ferme d'été"}, runs, farm_summaries(session), out)
    assert count == 1
    text = out.getvalue()
    if fmt == "json":
        document = json.loads(text)
        [run], [farm] = document["runs"], document["entries"]
    else:
        records = [json.loads(line) for line in text.splitlines()]
        assert [r["record"] for r in records] == ["header", "run", "entry"]
        run, farm = records[1], records[2]
    assert run["total_tft_units"] == 3 * LARGEST_PAYMENT
    assert farm["owed_tft_units"] == 3 * LARGEST_PAYMENT
    assert "ferme d'été" in text  # UTF-8 as written, as orjson writes it


def test_a_site_document_with_a_total_past_64_bits_is_written_exactly(tmp_path):
    from payouts.export.site import _write_json

    path = tmp_path / "periods.json"
    _write_json(path, {"periods": [{"period": "2025-01", "paid_tft_units": 3 * LARGEST_PAYMENT, "farm": "北京农场"}]})
    assert json.loads(path.read_bytes())["periods"][0] == {
        "period": "2025-01",
        "paid_tft_units": 3 * LARGEST_PAYMENT,
        "farm": "北京农场",
    }
