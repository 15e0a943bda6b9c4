"""Input that means different things to different JSON readers is refused naming the place: a
key named twice (`/2` lines too), two start states for one node, a byte order mark, and an
integer too long to read (named by node and field, not as a whole piece)."""

from __future__ import annotations

import gzip
import json

import pytest

from payouts.calculation.engine import calculate_period
from payouts.snapshot.format2 import NodeLine
from payouts.snapshot.format2_writer import Format2Writer
from payouts.snapshot.line_keys import plain_head_quotes
from payouts.snapshot.load import SnapshotError, load_snapshot
from payouts.snapshot.stream import StreamedSnapshot
from tests import factories
from tests.snapshot.test_format2 import START_HEIGHT, _header, ts

LONG = "7" * 5000
UP_AT_START = {"state": "Up", "down_since": None, "target": "Up"}
ASLEEP_AT_START = {"state": "Down", "down_since": None, "target": "Up"}


def _lines2(tmp_path, power: dict | None = None) -> list[bytes]:
    """A valid `/2` month as the writer writes it: header, node 1, node 2 (power at start on 2)."""
    plain = tmp_path / "plain.jsonl"
    events = [(START_HEIGHT + 10 * k, 0, ts(START_HEIGHT + 10 * k), 2, 60 * k) for k in range(1, 4)]
    with Format2Writer(plain, _header()) as writer:
        writer.node(factories.node(1), None, events)
        writer.node(factories.node(2), power or ASLEEP_AT_START, events)
    return plain.read_bytes().splitlines(keepends=True)


def _file2(tmp_path, lines: list[bytes], name: str = "m.jsonl.gz"):
    path = tmp_path / name
    data = b"".join(lines)
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


def _refused(path) -> SnapshotError:
    with pytest.raises(SnapshotError) as caught:
        calculate_period(load_snapshot(path))
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)
    return caught.value


def _replace(line: bytes, old: bytes, new: bytes) -> bytes:
    assert line.count(old) == 1, (old, line)
    return line.replace(old, new)


# -- 1. a key named twice in a /2 line --------------------------------------------------------

TWICE_2 = [
    # (line number, bytes replaced, by, json path, words)
    (2, b'"node_id":1,', b'"node_id":1,"node_id":1,', "line 2: $.node.node_id", "'node_id' appears twice"),
    (2, b'"node_id":1,', b'"node_id":7,"node_id":1,', "line 2: $.node.node_id", "node 1: the key 'node_id'"),
    (2, b'"cru":4,', b'"cru":4,"cru":40,', "line 2: $.node.resources.cru", "node 1: the key 'cru'"),
    (2, b'"power_at_start":null,', b'"power_at_start":null,"power_at_start":null,', "line 2: $.power_at_start", ""),
    (3, b'"state":"Down",', b'"state":"Up","state":"Down",', "line 3: $.power_at_start.state", "node 2:"),
    # the same key spelt with an escape is the same key
    (2, b'"node_id":1,', b'"node_id":1,"node\\u005fid":1,', "line 2: $.node.node_id", "appears twice"),
    (2, b'{"node":', b'{"node":{"node_id":3},"node":', "line 2: $.node", "'node' appears twice"),
    (2, b'"kind":[', b'"kind":[2,2,2],"kind":[', "line 2: $.events.kind", "node 1: the key 'kind'"),
    (2, b'"events":{', b'"events":{"height":[],"events":{},', "line 2: $.events.height", "node 1:"),
    (1, b'"network":"dev",', b'"network":"main","network":"dev",', "line 1: $.network", "'network' appears"),
    (1, b'"start":{', b'"start":{"height":1,', "line 1: $.blocks.start.height", "'height' appears"),
]


@pytest.mark.parametrize(("number", "old", "new", "where", "words"), TWICE_2)
def test_a_key_named_twice_in_a_format_2_line_is_refused_naming_line_and_key(tmp_path, number, old, new, where, words):
    lines = _lines2(tmp_path)
    lines[number - 1] = _replace(lines[number - 1], old, new)
    refused = _refused(_file2(tmp_path, lines))
    assert refused.json_path == where
    assert "appears twice in one object" in refused.problem and words in refused.problem


def test_the_quote_count_of_a_plain_line_is_what_the_writer_writes(tmp_path):
    """The count that keeps the exact check off the plain path matches both shapes of line."""
    for power in (UP_AT_START, ASLEEP_AT_START):
        _header_line, without, with_power = _lines2(tmp_path, power)
        for line in (without, with_power):
            head = line[: line.rindex(b',"events":')]
            document = json.loads(head + b"}")
            NodeLine.model_validate({**document, "events": {}})
            assert head.count(b'"') == plain_head_quotes(document)


def test_a_month_without_repeated_keys_is_still_measured_while_loading(tmp_path):
    snapshot = load_snapshot(_file2(tmp_path, _lines2(tmp_path)))
    assert isinstance(snapshot, StreamedSnapshot)
    assert snapshot.measured_in_load() is not None


# -- 2. two start states for one node ---------------------------------------------------------


@pytest.mark.parametrize(
    "entries",
    [
        [{"node_id": 1, **ASLEEP_AT_START}, {"node_id": 1, **ASLEEP_AT_START}],
        [{"node_id": 1, **ASLEEP_AT_START}, {"node_id": 2, **UP_AT_START}, {"node_id": 1, **UP_AT_START}],
    ],
)
def test_two_start_states_for_one_node_refuse_the_file_naming_the_node(tmp_path, entries):
    document = factories.snapshot(nodes=[factories.node(1), factories.node(2)], power_at_start=entries)
    refused = _refused(factories.write(tmp_path / "s.json", document))
    second = len(entries) - 1
    assert refused.json_path == f"$.power_at_start[{second}].node_id"
    assert refused.problem.startswith("node 1 has a second start state (the first is $.power_at_start[0])")


def test_a_node_line_twice_in_format_2_is_a_duplicate_node_id(tmp_path):
    """In `/2` a node's start state is on its line: two lines of one node are a duplicate node
    id (SPEC section 3: `invalid_record`), whatever their start states say."""
    lines = _lines2(tmp_path)
    twin = _replace(lines[2], b'"node_id":2,', b'"node_id":1,')
    receipts = calculate_period(load_snapshot(_file2(tmp_path, [*lines[:2], twin]))).receipts
    assert [(r.node_id, r.eligibility) for r in receipts] == [(1, "invalid_record")]
    assert receipts[0].reason.endswith("node id 1 appears 2 times in the snapshot")


# -- 3. a byte order mark ---------------------------------------------------------------------

BOMS = [b"\xef\xbb\xbf", b"\xef\xbb\xbf\n", b"\xff\xfe"]


@pytest.mark.parametrize("mark", BOMS)
@pytest.mark.parametrize("name", ["s.json", "s.json.gz"])
def test_a_byte_order_mark_refuses_a_format_1_file(tmp_path, mark, name):
    data = mark + json.dumps(factories.snapshot()).encode()
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    refused = _refused(path)
    assert refused.json_path == "$" and refused.problem.startswith("starts with a byte order mark")


@pytest.mark.parametrize("name", ["m.jsonl.gz", "m.jsonl"])
def test_a_byte_order_mark_refuses_a_format_2_file(tmp_path, name):
    lines = _lines2(tmp_path)
    refused = _refused(_file2(tmp_path, [b"\xef\xbb\xbf" + lines[0], *lines[1:]], name))
    assert refused.json_path == "line 1" and refused.problem.startswith("starts with a byte order mark")


# -- 4. an integer too long to read -----------------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "where", "words"),
    [
        (lambda d: d["nodes"][1]["resources"].update(mru=LONG), "$.nodes[1].resources.mru", "node 2: "),
        (lambda d: d["nodes"][0].update(created="-" + LONG), "$.nodes[0].created", "node 1: "),
        (lambda d: d["farms"][0].update(farm_id=LONG), "$.farms[0].farm_id", ""),
        (lambda d: d.update(period_offset=LONG), "$.period_offset", ""),
        (lambda d: d["power_at_start"][0].update(down_since=LONG), "$.power_at_start[0].down_since", "node 2: "),
        (lambda d: d["uptime_events"][4].update(uptime=LONG), "$.uptime_events[4].uptime", "node 1: "),
    ],
)
def test_an_integer_too_long_to_read_is_named_by_node_and_field_in_format_1(tmp_path, mutate, where, words):
    document = factories.snapshot(
        nodes=[factories.node(1), factories.node(2)], power_at_start=[{"node_id": 2, **ASLEEP_AT_START}]
    )
    mutate(document)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(document).replace(f'"{LONG}"', LONG).replace(f'"-{LONG}"', "-" + LONG))
    refused = _refused(path)
    assert refused.json_path == where
    assert refused.problem == f"{words}an integer of 5,000 digits is too long to read (at most 4,300 digits)"


@pytest.mark.parametrize(
    ("number", "old", "where", "words"),
    [
        (2, b'"cru":4', "line 2: $.node.resources.cru", "node 1: "),
        (3, b'"created":1735000000', "line 3: $.node.created", "node 2: "),
        (3, b'"down_since":null', "line 3: $.power_at_start.down_since", "node 2: "),
        (2, b'"value":[60', "line 2: $.events.value[0]", "node 1: "),
        (1, b'"period_offset":81', "line 1: $.period_offset", ""),
    ],
)
def test_an_integer_too_long_to_read_is_named_by_node_and_field_in_format_2(tmp_path, number, old, where, words):
    lines = _lines2(tmp_path)
    key = old.split(b":")[0]
    lines[number - 1] = _replace(lines[number - 1], old, key + b":" + (b"[" if b"[" in old else b"") + LONG.encode())
    refused = _refused(_file2(tmp_path, lines))
    assert refused.json_path == where
    assert refused.problem == f"{words}an integer of 5,000 digits is too long to read (at most 4,300 digits)"


@pytest.mark.parametrize(
    ("old", "new", "where", "words"),
    [
        ('"uptime": ', '"uptime": 1, "uptime": ', "$.uptime_events[0].uptime", "node 1: the key 'uptime'"),
        ('"timestamp": ', '"timestamp": 5, "timestamp": ', "$.power_events[0].timestamp", "node 1: the key"),
        ('"kind": "state"', '"kind": "target", "kind": "state"', "$.power_events[0].kind", "node 1: the key 'kind'"),
        ('"value": "Down"', '"value": "Down", "value": "Up"', "$.power_events[0].value", "node 1: the key 'value'"),
    ],
)
def test_a_key_named_twice_in_a_format_1_event_is_refused_naming_the_event(tmp_path, old, new, where, words):
    power = [{"node_id": 1, "timestamp": factories.Period(81).start_ts + 60, "kind": "state", "value": "Down"}]
    document = factories.snapshot(nodes=[factories.node(1)], power_events=power)
    text = json.dumps(document)
    path = tmp_path / "s.json"
    path.write_text(text.replace(old, new, 1))
    refused = _refused(path)
    assert refused.json_path == where
    assert words in refused.problem and "appears twice in one object" in refused.problem


def test_a_format_1_month_of_many_pieces_needs_no_exact_check(tmp_path, monkeypatch):
    """The quote count of well-formed events is their pieces' (the exact check stays off)."""
    from payouts.snapshot import format1

    def refuse(*_args: object) -> None:
        raise AssertionError("the exact check ran")

    monkeypatch.setattr(format1.JsonSnapshot, "_refuse_repeated_keys", refuse)
    monkeypatch.setattr(format1, "_CHUNK_BYTES", 4096)
    power = [
        {"node_id": 1, "timestamp": factories.Period(81).start_ts + 60 * k, "kind": "state", "value": "Up"}
        for k in range(1, 200)
    ]
    document = factories.snapshot(nodes=[factories.node(1), factories.node(2)], power_events=power)
    path = tmp_path / "s.json"
    path.write_text(json.dumps(document, indent=2))
    calculation = calculate_period(load_snapshot(path))
    assert calculation.report.uptime_events > 1000 and calculation.report.power_events == 199
