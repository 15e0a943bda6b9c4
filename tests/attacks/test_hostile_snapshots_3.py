"""Hostile `/2` months read by worker processes: a month of a few chunks read by workers whatever
its size (one above the size at which workers read a month's node lines,
`node_lines.MIN_STORED_BYTES`, through the command), with one hostile line first after the header,
in the middle or last, gives what one process gives: the same error naming the same line, or
the same receipts. A truncated file, the size limit crossed while workers read, a worker that
raises or is slow: the same result, and no worker process left behind.

Found here and fixed: `payouts calculate --processes 1000` started a thousand processes (the
setting stops at 64, the option did not); worker processes outlived a loading process that was
killed (SIGKILL, the out-of-memory killer), waiting for work forever; lines longer than a
chunk were held a few per worker (five 12 MB lines in flight with two workers, 64 MB lines
times 128 with 64), where one process holds one; at a process limit, a first worker forked
before the second fork failed was left waiting, and the command hung at its exit."""

from __future__ import annotations

import dataclasses
import errno
import gzip
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from multiprocessing.context import ForkProcess
from pathlib import Path

import pytest

from payouts.calculation.engine import calculate_period
from payouts.periods import Period
from payouts.snapshot import lines as lines_module
from payouts.snapshot import node_lines, stream
from payouts.snapshot.load import SnapshotError, load_snapshot
from payouts.snapshot.measuring import Measuring
from payouts.snapshot.synthetic import write_synthetic_snapshot
from tests.attacks.test_hostile_command_inputs import _nothing_recorded
from tests.cli.test_operator_failures import ROOT, assert_short_failure, payouts

PERIOD = Period.from_label("2025-11")
#: Four chunks of node lines (`node_lines._CHUNK_LINES`): a hostile line in the first, a middle
#: or the last chunk
NODES = 170
#: About 9 MB stored, 29 MB of lines: above the size at which workers read a month
BIG_NODES = 760


def _month_lines(path: Path, nodes: int) -> list[bytes]:
    write_synthetic_snapshot(path, nodes=nodes, period=PERIOD, seed=5, snapshot_format=2)
    return gzip.decompress(path.read_bytes()).splitlines(keepends=True)


@pytest.fixture(scope="module")
def month(tmp_path_factory) -> list[bytes]:
    """A synthetic `/2` month of 170 nodes (7 MB of lines), read by workers whatever its size."""
    lines = _month_lines(tmp_path_factory.mktemp("month") / "month.jsonl.gz", NODES)
    assert len(lines) - 1 > 3 * node_lines._CHUNK_LINES
    return lines


@pytest.fixture(scope="module")
def big_month(tmp_path_factory) -> list[bytes]:
    """A synthetic `/2` month of 760 nodes, above the size at which workers read a month."""
    return _month_lines(tmp_path_factory.mktemp("big") / "month.jsonl.gz", BIG_NODES)


_packed: dict[tuple[int, int], tuple[bytes, bytes]] = {}


def _around(month: list[bytes], number: int) -> tuple[bytes, bytes]:
    """The month's lines before and after line `number`, each as a gzip member (kept: the
    same month is cut at a few places only)."""
    key = (id(month), number)
    if key not in _packed:
        before = gzip.compress(b"".join(month[: number - 1]), compresslevel=1, mtime=0)
        after = gzip.compress(b"".join(month[number:]), compresslevel=1, mtime=0)
        _packed[key] = (before, after)
    return _packed[key]


def _with_line(tmp_path: Path, month: list[bytes], number: int, line: bytes, name: str = "hostile.jsonl.gz") -> Path:
    """The month with line `number` replaced (gzip members one after the other: one stream)."""
    before, after = _around(month, number)
    path = tmp_path / name
    path.write_bytes(before + gzip.compress(line, mtime=0) + after)
    return path


@pytest.fixture
def started(monkeypatch) -> list[bool]:
    """Whether workers were started, per load (they must be, for these tests to mean anything);
    workers read the month whatever its size."""
    monkeypatch.setattr(stream, "MIN_STORED_BYTES", 0)
    record: list[bool] = []
    real_start = node_lines._start

    def start(measuring, processes):
        executor = real_start(measuring, processes)
        record.append(executor is not None)
        return executor

    monkeypatch.setattr(node_lines, "_start", start)
    return record


def _outcome(path: Path, processes: int, **limits) -> tuple:
    try:
        snapshot = load_snapshot(path, processes=processes, **limits)
        calculation = calculate_period(snapshot)
    except SnapshotError as exc:
        return ("refused", exc.json_path, exc.problem, str(exc))
    finally:
        assert multiprocessing.active_children() == []  # no worker left behind
    return (
        "accepted",
        snapshot.sha256,
        [dataclasses.astuple(receipt) for receipt in calculation.receipts],
        [receipt.receipt_bytes for receipt in calculation.receipts],
        calculation.totals,
    )


def _sub(pattern: bytes, new: bytes):
    def mutate(line: bytes) -> bytes:
        changed, count = re.subn(pattern, new, line, count=1)
        assert count == 1, pattern
        return changed

    return mutate


#: (case, the line changed, json path after "line N", words of the problem)
REFUSED = [
    ("a key twice", _sub(rb'("node_id":\d+,)', rb"\1\1"), ": $.node.node_id", "appears twice"),
    (
        "a key twice, once escaped",
        _sub(rb'"node_id":(\d+),', rb'"node_id":\1,"node\\u005fid":\1,'),
        ": $.node.node_id",
        "appears twice",
    ),
    (
        "a top-level key twice, spelt with escapes",
        _sub(rb'"power_at_start":', rb'"power\\u005fat_start":null,"\\u0070ower_at_start":'),
        ": $.power_at_start",
        "appears twice",
    ),
    (
        "a key twice, its quotes balanced by a missing key",
        lambda line: _sub(rb',"hru":\d+', b"")(_sub(rb'("cru":\d+,)', rb"\1\1")(line)),
        ": $.node.resources.cru",
        "appears twice",
    ),
    (
        "a key twice, its quotes balanced by a word written bare",
        lambda line: _sub(rb'"certification":"\w+"', b'"certification":1')(_sub(rb'("cru":\d+,)', rb"\1\1")(line)),
        ": $.node.resources.cru",
        "appears twice",
    ),
    ("a key with an escaped quote", _sub(rb'"twin_id"', rb'"twin\"_id"'), ": $.node", "twin"),
    ("a key with a \\u0022 quote", _sub(rb'"twin_id"', rb'"twin\\u0022id"'), ": $.node", "twin"),
    ("the events twice", _sub(rb',"events":\{', rb',"events":{},"events":{'), ": $.events", "appears twice"),
    (
        "NaN in a record",
        _sub(rb'"connection_price":\d+', rb'"connection_price":NaN'),
        ": $.node.connection_price",
        "NaN",
    ),
    ("Infinity in an event", _sub(rb'"value":\[\d+', rb'"value":[Infinity'), ": $.events.value[0]", "Infinity"),
    ("a 5000-digit integer", _sub(rb'"cru":\d+', b'"cru":' + b"9" * 5000), ": $.node.resources.cru", "5,000 digits"),
    ("a byte order mark on a node line", lambda line: b"\xef\xbb\xbf" + line, "", "not valid JSON"),
    ("invalid UTF-8", _sub(rb'"certification":"', b'"certification":"\xff'), "", "utf-8"),
    ("a string node id", _sub(rb'"node_id":(\d+)', rb'"node_id":"\1"'), ": $.node.node_id", "string"),
    ("an unknown key", _sub(rb'\{"node":\{', rb'{"node":{"colour":"red",'), ": $.node.colour", "unknown key"),
    ("not JSON", lambda line: b"{not json\n", "", "not valid JSON"),
    ("an array", lambda line: b"[1, 2, 3]\n", "", "expected a JSON object, got array"),
    ("nested too deeply", lambda line: b'{"node":' + b"[" * 100_000 + b"]" * 100_000 + b"}\n", "", "nested too deeply"),
    ("columns of different lengths", _sub(rb'"value":\[\d+,', b'"value":['), ": $.events.value", "entries, expected"),
    ("extra data after the object", _sub(rb"\}\}\n", b"}} {}\n"), "", "not valid JSON"),
]


@pytest.mark.slow  # reads a month twice, the second time with workers
@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize(("case", "mutate", "path", "words"), REFUSED, ids=[row[0] for row in REFUSED])
def test_bad_input_a_hostile_line_read_by_workers_is_the_same_error_naming_the_line(
    tmp_path, month, started, where, case, mutate, path, words
):
    number = {"first": 2, "middle": NODES // 2, "last": NODES + 1}[where]
    hostile = _with_line(tmp_path, month, number, mutate(month[number - 1]))
    one = _outcome(hostile, 1)
    two = _outcome(hostile, 2)
    assert started == [True]
    assert one[0] == "refused", one
    assert one[1] == f"line {number}{path}", one
    assert words in one[2], one
    assert two == one


def _escaped_word(line: bytes) -> bytes:
    """The certification word's first letter written as a JSON escape."""
    return re.sub(rb'"certification":"(\w)', lambda m: b'"certification":"\\u%04x' % m[1][0], line, count=1)


HEADER_REFUSED = [
    # (case, the header changed, json path, words): the workers are not started on a header
    # the loading pass refuses, or are started on orjson's reading of it and the pass refuses it
    ("a byte order mark", lambda line: b"\xef\xbb\xbf" + line, "line 1", "byte order mark"),
    ("a key twice", _sub(rb'("network":"\w+",)', rb"\1\1"), "line 1: $.network", "appears twice"),
    (
        "a key twice, the first one wrong",
        _sub(rb'"period_offset":', rb'"period_offset":0,"period_offset":'),
        "line 1: $.period_offset",
        "appears twice",
    ),
    ("Infinity", _sub(rb'"period_offset":\d+', b'"period_offset":Infinity'), "line 1: $.period_offset", "Infinity"),
    (
        "a 5000-digit height",
        _sub(rb'"height":\d+', b'"height":' + b"9" * 5000),
        "line 1: $.blocks.start.height",
        "5,000",
    ),
]


@pytest.mark.slow  # reads a month twice, the second time with workers
@pytest.mark.parametrize(("case", "mutate", "path", "words"), HEADER_REFUSED, ids=[row[0] for row in HEADER_REFUSED])
def test_bad_input_a_hostile_header_read_with_workers_is_the_same_error(
    tmp_path, month, started, case, mutate, path, words
):
    hostile = _with_line(tmp_path, month, 1, mutate(month[0]))
    one = _outcome(hostile, 1)
    assert one[0] == "refused", one
    assert one[1] == path, one
    assert words in one[2], one
    assert _outcome(hostile, 2) == one


#: (case, the line changed): the same node, spelt otherwise
EQUAL = [
    ("a key spelt with escapes", _sub(rb'"node_id"', rb'"\\u006eode_id"')),
    ("a word spelt with escapes", _escaped_word),
    ("spaces and tabs in the record", _sub(rb'\{"node":\{', b'{ "node" :\t{ ')),
    ("a carriage return before the line end", _sub(rb"\n$", b"\r\n")),
    ("-0 for 0", _sub(rb'":0([,}])', rb'":-0\1')),
]


@pytest.mark.slow  # reads a month twice, the second time with workers
@pytest.mark.parametrize("where", ["first", "last"])
@pytest.mark.parametrize(("case", "mutate"), EQUAL, ids=[row[0] for row in EQUAL])
def test_an_odd_but_equal_spelling_read_by_workers_gives_the_same_receipts(
    tmp_path, month, started, where, case, mutate
):
    number = {"first": 2, "last": NODES + 1}[where]
    plain = _outcome(_with_line(tmp_path, month, number, month[number - 1], "plain.jsonl.gz"), 1)
    odd = _with_line(tmp_path, month, number, mutate(month[number - 1]))
    one = _outcome(odd, 1)
    two = _outcome(odd, 2)
    assert started == [True]
    assert one[0] == "accepted" and one[2] == plain[2] and one[4] == plain[4]
    assert two == one


@pytest.mark.slow  # reads a month twice, the second time with workers
def test_a_wide_integer_read_by_workers_makes_the_same_node_invalid(tmp_path, month, started):
    number = NODES // 2
    wide = _with_line(tmp_path, month, number, _sub(rb'"value":\[\d+', b'"value":[' + b"9" * 400)(month[number - 1]))
    one = _outcome(wide, 1)
    assert one[0] == "accepted"
    invalid = [row for row in one[2] if "invalid_record" in row]
    assert len(invalid) == 1
    assert _outcome(wide, 2) == one
    assert started == [True]


@pytest.mark.slow  # reads a month twice, the second time with workers
def test_a_node_line_twice_read_by_workers_is_the_same_duplicate(tmp_path, month, started):
    number = NODES + 1
    twin = _with_line(tmp_path, month, number, month[1])  # node 1 again, last
    one = _outcome(twin, 1)
    assert one[0] == "accepted"
    assert sum("invalid_record" in row for row in one[2]) == 1
    assert _outcome(twin, 2) == one
    assert started == [True]


@pytest.mark.slow  # reads a month twice, the second time with workers
def test_a_line_past_the_longest_read_by_workers_is_the_same_error(tmp_path, month, started, monkeypatch):
    monkeypatch.setattr(lines_module, "MAX_LINE_BYTES", max(len(line) for line in month) + 10)
    number = NODES // 2
    longer = _with_line(tmp_path, month, number, month[number - 1].rstrip(b"\n") + b" " * 100_000 + b"\n")
    one = _outcome(longer, 1)
    assert one[:2] == ("refused", f"line {number}") and "longer than" in one[2]
    assert _outcome(longer, 2) == one
    assert started == [True]


@pytest.mark.slow  # reads a month twice, the second time with workers
@pytest.mark.parametrize("left_off", ["most", "40 bytes"])
def test_a_file_cut_mid_gzip_read_by_workers_is_the_same_error(tmp_path, month, started, left_off):
    path = _with_line(tmp_path, month, 2, month[1])
    data = path.read_bytes()
    kept = len(data) // 2 if left_off == "most" else len(data) - 40
    path.write_bytes(data[:kept])
    one = _outcome(path, 1)
    assert one[:2] == ("refused", "$") and "not a valid gzip file" in one[2], one
    assert _outcome(path, 2) == one
    assert started == [True]


@pytest.mark.slow  # reads a month twice, the second time with workers
def test_the_size_limit_crossed_while_workers_read_is_the_same_error(tmp_path, month, started):
    path = _with_line(tmp_path, month, 2, month[1])
    limit = len(b"".join(month)) // 2
    one = _outcome(path, 1, max_decompressed_bytes=limit)
    assert one[:2] == ("refused", "$") and "decompresses to more than" in one[2], one
    assert _outcome(path, 2, max_decompressed_bytes=limit) == one
    assert started == [True]


@pytest.mark.slow  # reads a month twice, the second time with workers
def test_a_worker_that_raises_mid_chunk_leaves_its_lines_to_the_loading_process(tmp_path, month, started, monkeypatch):
    path = _with_line(tmp_path, month, 2, month[1])
    one = _outcome(path, 1)
    loading_process = os.getpid()
    real_read_line = Measuring.read_line

    def read_line(self, line):
        if os.getpid() != loading_process and b'"node_id":%d,' % (NODES // 2) in line:
            raise MemoryError("a worker out of memory")
        return real_read_line(self, line)

    monkeypatch.setattr(Measuring, "read_line", read_line)
    assert _outcome(path, 2) == one
    assert started == [True]


@pytest.mark.slow  # reads a month twice, the second time with workers
def test_chunks_finished_out_of_order_are_merged_in_file_order(tmp_path, month, started, monkeypatch):
    path = _with_line(tmp_path, month, 2, month[1])
    one = _outcome(path, 1)
    loading_process = os.getpid()
    real_read_line = Measuring.read_line

    def read_line(self, line):
        if os.getpid() != loading_process and b'{"node":{"node_id":1,' in line:
            time.sleep(1.5)  # the first chunk comes back after the ones behind it
        return real_read_line(self, line)

    monkeypatch.setattr(Measuring, "read_line", read_line)
    assert _outcome(path, 2) == one
    assert started == [True]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


@pytest.mark.slow  # reads a month twice, the second time with workers
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc and the parent-death signal are Linux's")
def test_workers_end_when_the_loading_process_is_killed(tmp_path, month):
    path = _with_line(tmp_path, month, 2, month[1])
    script = textwrap.dedent(
        f"""
        import time
        from payouts.snapshot import node_lines, stream
        from payouts.snapshot.load import load_snapshot
        from payouts.snapshot.measuring import Measuring

        real_start, real_read_line = node_lines._start, Measuring.read_line

        def start(measuring, processes):
            executor = real_start(measuring, processes)
            print(*executor._processes, flush=True)
            return executor

        def read_line(self, line):
            time.sleep(0.2)
            return real_read_line(self, line)

        node_lines._start, Measuring.read_line = start, read_line
        stream.MIN_STORED_BYTES = 0
        load_snapshot({str(path)!r}, processes=2)
        """
    )
    loading = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert loading.stdout is not None
        worker_pids = [int(pid) for pid in loading.stdout.readline().split()]
        assert len(worker_pids) == 2 and all(_alive(pid) for pid in worker_pids)
        time.sleep(1)  # the workers are reading
        loading.send_signal(signal.SIGKILL)
        loading.wait(10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in worker_pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = [pid for pid in worker_pids if _alive(pid)]
    finally:
        if loading.poll() is None:
            loading.kill()
            loading.wait()
    for pid in left:  # ended here so that a failure leaves nothing behind
        os.kill(pid, signal.SIGKILL)
    assert left == []


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0", "--processes"),
        ("-1", "--processes"),
        ("65", "--processes"),
        ("1000", "--processes"),
        ("two", "--processes"),
        ("1.5", "--processes"),
    ],
)
def test_bad_input_the_number_of_processes_is_refused_clearly(tmp_path, sqlite_url, value, words):
    snapshot = tmp_path / "absent.jsonl.gz"  # refused before the file is opened
    result = payouts(
        "calculate",
        "--snapshot",
        str(snapshot),
        "--dry-run",
        "--processes",
        value,
        env={"PAYOUTS_DATABASE_URL": sqlite_url},
    )
    assert result.returncode == 2
    text = assert_short_failure(result, words, max_lines=8)
    assert "file not found" not in text, text


@pytest.mark.slow  # reads a month twice, the second time with workers
def test_lines_longer_than_a_chunk_keep_the_bytes_in_flight_bounded(tmp_path, month, started, monkeypatch):
    """A chunk is 48 lines or 2 MB, and a few are in flight per worker: a month of lines of
    several MB (a hostile one: up to 64 MB each, with --processes 64) must not hold a few
    chunks' worth of such lines per worker, but about one line more than one process holds."""
    monkeypatch.setattr(stream, "MIN_STORED_BYTES", 0)
    longest = 12 << 20
    long_lines = [line.rstrip(b"\n").ljust(longest) + b"\n" for line in month[1:9]]
    path = tmp_path / "long.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join([month[0], *long_lines, *month[9:40]]), mtime=0))
    in_flight = [0]
    most = [0]
    real_submit, real_merged = node_lines.Workers._submit, node_lines._merged

    def submit(self, chunk):
        in_flight[0] += sum(map(len, chunk))
        most[0] = max(most[0], in_flight[0])
        return real_submit(self, chunk)

    def merged(numbers, chunk, future):
        if future is not None:
            in_flight[0] -= sum(map(len, chunk))
        return real_merged(numbers, chunk, future)

    one = _outcome(path, 1)
    monkeypatch.setattr(node_lines.Workers, "_submit", submit)
    monkeypatch.setattr(node_lines, "_merged", merged)
    assert _outcome(path, 2) == one
    assert started == [True]
    ahead_bytes = 2 * 2 * node_lines._AHEAD_PER_WORKER * node_lines._CHUNK_BYTES  # two workers
    assert most[0] <= ahead_bytes + 2 * (longest + 1), most[0]


@pytest.mark.slow  # reads a month twice, the second time with workers
def test_a_second_worker_that_cannot_be_started_leaves_no_first_one_behind(tmp_path, month, started, monkeypatch):
    """At a process limit (ulimit -u, a container's pids limit) the first fork may succeed and
    the second fail: the month is read in one process, and the first worker must not be left
    waiting for work (the command would then hang at its exit, joining it)."""
    path = _with_line(tmp_path, month, 2, month[1])
    one = _outcome(path, 1)
    real_start = ForkProcess.start
    forks = [0]

    def start(self):
        forks[0] += 1
        if forks[0] == 2:
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        return real_start(self)

    monkeypatch.setattr(ForkProcess, "start", start)
    assert _outcome(path, 2) == one  # no worker left: checked in _outcome
    assert started == [False] and forks[0] == 2


@pytest.mark.slow  # reads a month twice, the second time with workers
def test_bad_input_the_command_with_workers_refuses_a_hostile_month_in_one_line(tmp_path, sqlite_url, big_month):
    """Through a real `payouts calculate` process: the same document with 1 and 2 processes for
    a month above the size at which workers read it, and a key named twice in its middle
    refused in one line, nothing recorded."""
    env = {"PAYOUTS_DATABASE_URL": sqlite_url}
    good = _with_line(tmp_path, big_month, 2, big_month[1], "good.jsonl.gz")
    assert good.stat().st_size > node_lines.MIN_STORED_BYTES
    documents = []
    for processes in ("1", "2"):
        done = payouts("calculate", "-s", str(good), "--dry-run", "--json", "--processes", processes, env=env)
        assert done.returncode == 0, done.stderr
        documents.append(json.loads(done.stdout))
    assert len(documents[0]["receipts"]) == BIG_NODES
    assert documents[1] == documents[0]
    number = BIG_NODES // 2
    hostile = _with_line(tmp_path, big_month, number, _sub(rb'("node_id":\d+,)', rb"\1\1")(big_month[number - 1]))
    for extra in (["--dry-run"], []):
        refused = payouts("calculate", "-s", str(hostile), "--processes", "2", *extra, env=env)
        assert refused.returncode == 2
        assert_short_failure(refused, str(hostile), f"line {number}: $.node.node_id", "appears twice")
    _nothing_recorded(sqlite_url)
