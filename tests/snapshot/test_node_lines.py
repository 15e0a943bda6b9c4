"""A `/2` month read by worker processes gives what one process gives: the same node records,
measurements, receipts (bytes and hashes) and run totals, and the same clear error."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os

import pytest
from typer.testing import CliRunner

from payouts.calculation.engine import calculate_period
from payouts.cli.main import app
from payouts.periods import Period
from payouts.snapshot import node_lines, stream
from payouts.snapshot.load import SnapshotError, load_snapshot
from payouts.snapshot.measuring import Measuring
from payouts.snapshot.synthetic import write_synthetic_snapshot

runner = CliRunner()
PERIOD = Period.from_label("2025-11")


@pytest.fixture
def parallel(monkeypatch):
    """Workers for any month, a few lines a chunk; records whether workers read the month."""
    monkeypatch.setattr(stream, "MIN_STORED_BYTES", 0)
    monkeypatch.setattr(node_lines, "_CHUNK_LINES", 3)
    started: list[bool] = []
    real_start = node_lines._start

    def start(measuring, processes):
        executor = real_start(measuring, processes)
        started.append(executor is not None)
        return executor

    monkeypatch.setattr(node_lines, "_start", start)
    return started


def _lines(tmp_path, nodes: int = 24) -> list[bytes]:
    path = tmp_path / "synth.jsonl.gz"
    write_synthetic_snapshot(path, nodes=nodes, period=PERIOD, seed=3, snapshot_format=2)
    return gzip.decompress(path.read_bytes()).splitlines(keepends=True)


def _write(tmp_path, lines: list[bytes], name: str = "month.jsonl.gz"):
    path = tmp_path / name
    path.write_bytes(gzip.compress(b"".join(lines)))
    return path


def _unusual(line: bytes) -> bytes:
    """The line with its first two events swapped (out of chain order: the checked reader and
    the state machine take the month), written by json.dumps (not the writer's plain shape)."""
    document = json.loads(line)
    for column in document["events"].values():
        column[0], column[1] = column[1], column[0]
    return json.dumps(document).encode() + b"\n"


def _everything(path, processes: int) -> dict:
    snapshot = load_snapshot(path, processes=processes)
    loaded = {
        "sha256": snapshot.sha256,
        "nodes": [node.model_dump() for node in snapshot.header.nodes],
        "power": [power.model_dump() for power in snapshot.header.power_at_start],
        "measured": snapshot.measured_in_load(),  # type: ignore[attr-defined]
    }
    calculation = calculate_period(snapshot)
    return {
        **loaded,
        "receipts": [dataclasses.astuple(receipt) for receipt in calculation.receipts],
        "hashes": [receipt.receipt_hash for receipt in calculation.receipts],
        "bytes": [receipt.receipt_bytes for receipt in calculation.receipts],
        "totals": calculation.totals,
        "stats": dataclasses.asdict(snapshot.stats),
    }


def test_an_ordinary_month_read_by_workers_equals_one_process(tmp_path, parallel):
    path = _write(tmp_path, _lines(tmp_path))
    one = _everything(path, 1)
    assert parallel == []  # one process: no workers
    two = _everything(path, 2)
    assert parallel == [True]
    assert one["measured"] is not None and len(one["measured"]) == 24
    assert len(one["hashes"]) == 24 and len(set(one["hashes"])) == 24
    assert two == one


def test_a_month_with_unusual_nodes_read_by_workers_equals_one_process(tmp_path, parallel):
    lines = _lines(tmp_path)
    lines[5] = _unusual(lines[5])
    lines[17] = _unusual(lines[17])
    path = _write(tmp_path, lines)
    one = _everything(path, 1)
    two = _everything(path, 2)
    assert parallel == [True]
    assert one["measured"] is None  # measured again, by the checked reader, in both
    assert two == one


def test_an_invalid_record_read_by_workers_is_the_same_clear_error(tmp_path, parallel):
    lines = _lines(tmp_path)
    broken = json.loads(lines[9])
    broken["node"]["node_id"] = "nine"
    lines[9] = json.dumps(broken).encode() + b"\n"
    lines[20] = b"{not json\n"  # a later problem: the first one in the file is named
    path = _write(tmp_path, lines)
    errors = []
    for processes in (1, 2):
        with pytest.raises(SnapshotError) as caught:
            calculate_period(load_snapshot(path, processes=processes))
        errors.append(str(caught.value))
    assert parallel == [True]
    assert "line 10" in errors[0]
    assert errors[1] == errors[0]


def test_a_truncated_file_names_the_first_problem_in_file_order(tmp_path, parallel):
    lines = _lines(tmp_path)
    broken = json.loads(lines[2])
    broken["colour"] = "red"
    lines[2] = json.dumps(broken).encode() + b"\n"
    whole = gzip.compress(b"".join(lines))
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(whole[: len(whole) - 40])
    errors = []
    for processes in (1, 2):
        with pytest.raises(SnapshotError) as caught:
            load_snapshot(path, processes=processes)
        errors.append(str(caught.value))
    assert "line 3" in errors[0] and "unknown key" in errors[0]
    assert errors[1] == errors[0]


def test_a_lost_worker_leaves_its_lines_to_the_loading_process(tmp_path, parallel, monkeypatch):
    path = _write(tmp_path, _lines(tmp_path))
    one = _everything(path, 1)
    loading_process = os.getpid()
    real_read_line = Measuring.read_line

    def read_line(self, line):
        if os.getpid() != loading_process and b'"node_id":7,' in line:
            os._exit(1)  # the worker dies mid-chunk
        return real_read_line(self, line)

    monkeypatch.setattr(Measuring, "read_line", read_line)
    assert _everything(path, 2) == one
    assert parallel == [True]


def test_the_command_gives_the_same_document_and_refusal_with_workers(tmp_path, parallel):
    lines = _lines(tmp_path)
    good = _write(tmp_path, lines, "good.jsonl.gz")
    lines[4] = lines[4].replace(b'"node":{', b'"node":{"colour":"red",', 1)
    bad = _write(tmp_path, lines, "bad.jsonl.gz")
    env = {"PAYOUTS_DATABASE_URL": f"sqlite:///{tmp_path}/ledger.sqlite3", "PAYOUTS_STATE_DIR": str(tmp_path)}
    outputs = []
    for processes in ("1", "2"):
        done = runner.invoke(
            app, ["calculate", "-s", str(good), "--dry-run", "--json", "--processes", processes], env=env
        )
        refused = runner.invoke(app, ["calculate", "-s", str(bad), "--dry-run", "--processes", processes], env=env)
        assert done.exit_code == 0, done.output
        assert refused.exit_code == 2 and "Traceback" not in refused.output
        outputs.append((json.loads(done.stdout), refused.output))
    assert "line 5" in outputs[0][1] and "unknown key" in outputs[0][1]
    assert outputs[1] == outputs[0]
    assert True in parallel
