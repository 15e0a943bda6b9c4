"""Writers: CSV that opens cleanly and safely, output written row by row, flat memory, and the
export's one-walk Merkle proofs equal to merkle.inclusion_proof."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tracemalloc

import orjson
import pytest
from sqlmodel import Session

from payouts.export.rows import FIELDS, ExportFilter, all_inclusion_proofs, iter_entries
from payouts.export.writers import csv_cell, write_csv, write_json, write_jsonl
from payouts.ledger.db import make_engine
from payouts.stellar.merkle import inclusion_proof, merkle_root, verify_inclusion
from tests.export.bulk import fill_ledger
from tests.export.support import FORMULA_FARM_NAME, HOSTILE_FARM_NAME

NASTY = [
    FORMULA_FARM_NAME,
    HOSTILE_FARM_NAME,
    "plain",
    'a "quoted", name',
    "line one\nline two\r\nthree",
    "+31 6 1234",
    "-1+1",
    "@SUM(1)",
    "\tTAB",
    "\rCR",
    "=1+1",
    "ünïcødé ファーム 🌱",
    "",
]


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@A1", "\tx", "\rx"])
def test_formula_cells_get_a_leading_quote(text):
    assert csv_cell(text) == "'" + text


def test_other_cells_are_left_as_they_are():
    assert [csv_cell(v) for v in ("farm", "1=1", 12, None, True, ["ab", "cd"])] == [
        "farm",
        "1=1",
        12,
        "",
        "true",
        "ab cd",
    ]


def test_csv_round_trips_through_dictreader_and_defuses_formulas():
    entries = [
        {name: None for name in FIELDS} | {"farm_name": name, "node_id": i, "amount_tft": "1.0000000"}
        for i, name in enumerate(NASTY)
    ]
    out = io.StringIO(newline="")
    assert write_csv(iter(entries), out) == len(NASTY)
    rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert list(rows[0]) == list(FIELDS)
    for row, name in zip(rows, NASTY):
        expected = "'" + name if name[:1] in ("=", "+", "-", "@", "\t", "\r") else name
        assert row["farm_name"] == expected
        assert not row["farm_name"].startswith(("=", "+", "-", "@"))
    assert rows[0]["farm_name"].startswith("'=HYPERLINK(")
    assert rows[4]["farm_name"] == "line one\nline two\r\nthree"


def _rows_written_before_the_next_is_read(writer):
    """The writer has written row i before it asks for row i + 1 (it streams)."""
    out = io.StringIO()
    seen = []

    def entries():
        for i in range(5):
            if i:
                assert f"node-{i - 1}-marker" in out.getvalue(), "the previous row was not written yet"
            seen.append(i)
            yield {name: None for name in FIELDS} | {"farm_name": f"node-{i}-marker", "node_id": i}

    writer(entries(), out)
    return seen, out.getvalue()


def test_every_writer_writes_each_row_before_reading_the_next():
    for writer in (
        write_csv,
        lambda it, out: write_json({"format": "x"}, [], it, out),
        lambda it, out: write_jsonl({"format": "x"}, [], it, out),
    ):
        seen, text = _rows_written_before_the_next_is_read(writer)
        assert seen == [0, 1, 2, 3, 4] and "node-4-marker" in text
    _, text = _rows_written_before_the_next_is_read(
        lambda it, out: write_json({"format": "x"}, [{"run_id": 1}], it, out)
    )
    document = orjson.loads(text)
    assert document["format"] == "x" and document["runs"] == [{"run_id": 1}] and len(document["entries"]) == 5


def test_one_walk_proofs_equal_merkle_inclusion_proofs():
    for size in (1, 2, 3, 5, 8, 13, 100):
        hashes = [hashlib.sha256(f"{size}:{i}".encode()).hexdigest() for i in range(size)]
        proofs = all_inclusion_proofs(hashes)
        root = merkle_root(hashes)
        for h in hashes:
            index, tree_size, path = inclusion_proof(h, hashes)
            assert proofs[h] == (index, tree_size, [node.hex() for node in path])
            assert verify_inclusion(h, index, tree_size, path, root)


def _peak_export_bytes(session: Session, batch_size: int) -> tuple[int, int]:
    tracemalloc.start()
    try:
        with open(os.devnull, "w", encoding="utf-8", newline="") as sink:
            count = write_csv(iter_entries(session, ExportFilter(), batch_size=batch_size), sink)
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow  # fills two ledgers with 10,000 payments
def test_export_memory_does_not_grow_with_the_number_of_rows(sqlite_url, new_sqlite_ledger, tmp_path):
    """8,000 rows against 2,000: the peak stays about the same (the rows are streamed).

    Batches of 10 payments make hundreds of transactions, so the bounded caches (Merkle trees,
    formatted times) are full in both exports and only the rows could make a difference."""
    small = make_engine(new_sqlite_ledger(tmp_path / "small.sqlite3"))
    large = make_engine(sqlite_url)
    fill_ledger(small, nodes=400, periods=5, batch=10)
    fill_ledger(large, nodes=1600, periods=5, batch=10)
    with Session(small) as session:
        _peak_export_bytes(session, 50)  # warm caches (compiled statements) first
        small_count, small_peak = _peak_export_bytes(session, 50)
    with Session(large) as session:
        large_count, large_peak = _peak_export_bytes(session, 50)
    assert (small_count, large_count) == (2000, 8000)
    # holding the rows would take 4x; streaming stays within a small margin
    assert large_peak < small_peak * 1.25, (small_peak, large_peak)
    small.dispose()
    large.dispose()
