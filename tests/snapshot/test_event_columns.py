"""Event columns read straight from a node line's bytes equal what a JSON parser reads, and
anything outside the plain integer grammar is left to the JSON reader."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payouts.snapshot.event_columns import _integers, split_node_line

I64_MAX = 2**63 - 1


def _read(text: str):
    return _integers(text.encode(), text.count(","))


def _json_integers(text: str) -> list[int] | None:
    try:
        value = json.loads(f"[{text}]")
    except ValueError:
        return None
    return value if all(type(item) is int for item in value) else None


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="0123456789,-+.eE ", max_size=40))
def test_the_byte_reader_takes_only_what_json_reads_as_the_same_integers(text):
    read = _read(text)
    expected = _json_integers(text)
    if read is None:
        # refused only when JSON does not read plain non-negative integers from it
        assert expected is None or expected == [] or "-" in text or " " in text
        return
    assert expected is not None
    assert read.tolist() == [min(item, I64_MAX) for item in expected]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.integers(0, 2**70), min_size=1, max_size=30))
def test_plain_integers_of_any_width_read_exactly_or_saturate_past_int64(values):
    read = _read(",".join(map(str, values)))
    assert read is not None
    assert read.tolist() == [min(value, I64_MAX) for value in values]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**66), st.integers(0, 3)), min_size=1, max_size=30))
def test_a_number_written_with_a_leading_zero_is_left_to_json(entries):
    text = ",".join("0" * zeros + str(value) for value, zeros in entries)
    read = _read(text)
    if any(zeros for _value, zeros in entries):
        assert read is None
    else:
        assert read is not None
        assert read.tolist() == [min(value, I64_MAX) for value, _zeros in entries]


@pytest.mark.parametrize(
    "text",
    ["01", "0,01", "5,007", "00", "0,00", "1,,2", ",1", "1,", "-0", "1.0", "1e3", "+1", " 1", "1 ", "0x1", "1,-2"],
)
def test_spellings_outside_the_plain_grammar_are_left_to_json(text):
    assert _read(text) is None


@pytest.mark.parametrize(("text", "values"), [("0", [0]), ("0,0,10,100,0", [0, 0, 10, 100, 0]), ("7", [7])])
def test_plain_spellings_are_read(text, values):
    read = _read(text)
    assert read is not None
    assert read.tolist() == values


_COLUMNS = ("height", "index", "timestamp", "kind", "value")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(*(st.integers(0, 2**70),) * 5), max_size=20),
    st.dictionaries(st.sampled_from(["name", "x", "events_", "node"]), st.text(max_size=20), max_size=3),
)
def test_a_written_line_splits_into_its_record_and_columns(rows, record):
    document = {**record, "events": {name: [row[i] for row in rows] for i, name in enumerate(_COLUMNS)}}
    line = json.dumps(document, separators=(",", ":")).encode() + b"\n"
    split = split_node_line(line)
    if not record:
        assert split is None  # nothing before the events: not the writer's shape
        return
    assert split is not None
    head, table = split
    assert orjson.loads(head) == record
    assert [column.tolist() for column in table] == [
        [min(value, I64_MAX) for value in document["events"][name]] for name in _COLUMNS
    ]


@pytest.mark.parametrize(
    "line",
    [
        b'{"node":1,"events":{"height":[1],"index":[1],"timestamp":[1],"kind":[2],"value":[1]}, }',
        b'{"node":1,"events":{"height":[1],"index":[1],"timestamp":[1],"kind":[2],"value":[1]},"x":1}',
        b'{"node":1,"events":{"index":[1],"height":[1],"timestamp":[1],"kind":[2],"value":[1]}}',
        b'{"node":1,"events":{"height":[1],"index":[1, 2],"timestamp":[1],"kind":[2],"value":[1]}}',
        b'{"node":1,"events":{"height":[1],"index":[1,2],"timestamp":[1],"kind":[2],"value":[1]}}',
        b'{"node":1,"events":{"height":[1],"index":[1],"timestamp":[1],"kind":[2],"value":[1.0]}}',
        b'{"node":1,"events" :{"height":[1],"index":[1],"timestamp":[1],"kind":[2],"value":[1]}}',
        b'{"node":1,"events":{"height":[],"index":[1],"timestamp":[1],"kind":[2],"value":[1]}}',
        b'{"node":1,"events":{"height":[1],"index":[],"timestamp":[1],"kind":[2],"value":[1]}}',
        b'{"node":1,"events":{"height":[1,2],"index":[1,2],"timestamp":[1,,2],"kind":[2,2],"value":[1,1]}}',
        b'{"node":1,"events":{"height":[1],"index":[1],"timestamp":[1],"kind":[2],"value":[01]}}',
    ],
)
def test_other_shapes_are_left_to_json(line):
    assert split_node_line(line) is None
