"""Hostile snapshot files the world could produce, through the loader and through a real
`payouts calculate --snapshot FILE --dry-run --json` process: each is refused with one clear
line naming the file and the place (no traceback, nothing recorded), or gives the documented
result.

Found here and fixed: a key named twice in a `/2` line (or in its events) was read as the last
one; two `power_at_start` entries for one `/1` node were read as the last one; NaN in a `/1`
header's `source` was taken as a float; a byte order mark was skipped in `/1`; a 5,000-digit
number, or a deeply nested value, in `/1` events crashed the error report with a traceback (a
ValueError and a RecursionError the locator did not expect); an integer past a double's range
in a `/2` line (400 digits) refused the file as "number is infinity" instead of being read
exactly (the node `invalid_record`); an integer of 5,000 digits was named only by its line or
top-level key."""

from __future__ import annotations

import gzip
import json

import pytest

from payouts.calculation.engine import calculate_period
from payouts.snapshot.load import SnapshotError, load_snapshot
from tests import factories
from tests.attacks.test_hostile_command_inputs import _nothing_recorded
from tests.cli.test_operator_failures import assert_short_failure, payouts
from tests.snapshot.test_format2 import END_HEIGHT, START_HEIGHT, ts
from tests.snapshot.test_strict_input import _lines2, _replace

DEEP = 100_000


def _gz(tmp_path, data: bytes, name: str = "hostile.jsonl.gz"):
    path = tmp_path / name
    path.write_bytes(gzip.compress(data, mtime=0) if name.endswith(".gz") else data)
    return path


def _edit(number: int, old: bytes, new: bytes):
    """A `/2` file whose line `number` has `old` replaced by `new`."""

    def build(tmp_path):
        lines = _lines2(tmp_path)
        lines[number - 1] = _replace(lines[number - 1], old, new)
        return _gz(tmp_path, b"".join(lines))

    return build


def _with_line(number: int, line: bytes):
    def build(tmp_path):
        lines = _lines2(tmp_path)
        lines[number - 1] = line
        return _gz(tmp_path, b"".join(lines))

    return build


def _truncated(tmp_path):
    packed = gzip.compress(b"".join(_lines2(tmp_path)), mtime=0)
    return _write_bytes(tmp_path, packed[:-12])


def _garbage_member(tmp_path):
    packed = gzip.compress(b"".join(_lines2(tmp_path)), mtime=0)
    return _write_bytes(tmp_path, packed + b"\x1f\x8b\x08\x00garbage, not deflate")


def _write_bytes(tmp_path, data: bytes, name: str = "hostile.jsonl.gz"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _v1(mutate, raw: bool = False):
    def build(tmp_path):
        document = factories.snapshot(nodes=[factories.node(1)])
        text = mutate(document) if raw else None
        if text is None:
            mutate(document)
            text = json.dumps(document)
        return _write_bytes(tmp_path, text.encode("utf-8", "surrogatepass"), "hostile.json")

    return build


def _v1_text(old: str, new: str):
    def edit(document: dict) -> str:
        text = json.dumps(document)
        assert text.count(old) >= 1, old
        return text.replace(old, new, 1)

    return _v1(edit, raw=True)


def _node_events(heights_values: list[tuple[int, int, int]]) -> bytes:
    columns = {
        "height": [h for h, _i, _v in heights_values],
        "index": [i for _h, i, _v in heights_values],
        "timestamp": [ts(h) for h, _i, _v in heights_values],
        "kind": [2] * len(heights_values),
        "value": [v for _h, _i, v in heights_values],
    }
    return json.dumps({"node": factories.node(1), "power_at_start": None, "events": columns}).encode() + b"\n"


REFUSED = [
    # (case, build, json path, words)
    ("truncated gzip", _truncated, "$", "not a valid gzip file"),
    ("gzip member of garbage after a good one", _garbage_member, "$", "not a valid gzip file"),
    ("header line an array", lambda p: _gz(p, b'[{"format": "tfgrid-snapshot/2"}]\n'), "$", "expected a JSON object"),
    ("header line a string", lambda p: _gz(p, b'"tfgrid-snapshot/2"\n'), "$", "expected a JSON object"),
    ("node line an array", _with_line(2, b"[1, 2, 3]\n"), "line 2", "expected a JSON object, got array"),
    ("node line a number", _with_line(3, b"7\n"), "line 3", "expected a JSON object, got integer 7"),
    ("node line null", _with_line(2, b"null\n"), "line 2", "expected a JSON object, got null"),
    (
        "NaN in a node record",
        _edit(2, b'"connection_price":80', b'"connection_price":NaN'),
        "line 2: $.node.connection_price",
        "node 1: NaN is not a JSON number",
    ),
    (
        "Infinity in the header",
        _edit(1, b'"period_offset":81', b'"period_offset":Infinity'),
        "line 1: $.period_offset",
        "Infinity is not a JSON number",
    ),
    (
        "-Infinity in an event",
        _edit(2, b'"value":[60', b'"value":[-Infinity'),
        "line 2: $.events.value[0]",
        "node 1: -Infinity is not a JSON number",
    ),
    (
        "1e3 for an integer field",
        _edit(2, b'"cru":4', b'"cru":1e3'),
        "line 2: $.node.resources.cru",
        "got number 1000.0",
    ),
    (
        "1e3 for an event value",
        _edit(2, b'"value":[60', b'"value":[1e3'),
        "line 2: $.events.value[0]",
        "expected an integer, got number 1000.0",
    ),
    (
        "1e400 for an event value",
        _edit(2, b'"value":[60', b'"value":[1e400'),
        "line 2: $.events.value[0]",
        "expected an integer, got number inf",
    ),
    (
        "true for an event value",
        _edit(2, b'"value":[60', b'"value":[true'),
        "line 2: $.events.value[0]",
        "got boolean true",
    ),
    ("a string node id", _edit(2, b'"node_id":1,', b'"node_id":"1",'), "line 2: $.node.node_id", 'string "1"'),
    (
        "deeply nested node line",
        _with_line(2, b'{"node":' + b"[" * DEEP + b"]" * DEEP + b"}\n"),
        "line 2",
        "nested too deeply",
    ),
    (
        "deeply nested header",
        lambda p: _gz(p, b'{"format":"tfgrid-snapshot/2","source":' + b"[" * DEEP + b"]" * DEEP + b"}\n"),
        "line 1",
        "nested too deeply",
    ),
    (
        "columns of different lengths (huge)",
        _with_line(
            2,
            json.dumps(
                {
                    "node": factories.node(1),
                    "power_at_start": None,
                    "events": {
                        "height": [START_HEIGHT] * 200_000,
                        "index": list(range(200_000)),
                        "timestamp": [ts(START_HEIGHT)] * 200_000,
                        "kind": [2] * 200_000,
                        "value": [1] * 199_999,
                    },
                }
            ).encode()
            + b"\n",
        ),
        "line 2: $.events.value",
        "has 199999 entries, expected 200000",
    ),
    (
        "negative start block",
        _edit(1, b'"start":{"height":1001', b'"start":{"height":-1'),
        "line 1: $.blocks.start.height",
        "-1 is outside the chain's u32",
    ),
    (
        "end block before the start block",
        _edit(1, f'"end":{{"height":{END_HEIGHT}'.encode(), b'"end":{"height":5'),
        "line 1: $.blocks",
        "the end block must come after the start block",
    ),
    (
        "key differing by a dotless i",
        _edit(2, b'"node_id":1,', '"node_\u0131d":1,"node_id":1,'.encode()),
        "line 2: $.node.node_ıd",
        "unknown key",
    ),
    (
        "full-width certification word",
        _edit(2, b'"Diy"', '"\uff24iy"'.encode()),
        "line 2: $.node.certification",
        "Ｄiy",
    ),
    ("invalid UTF-8 in a string", _edit(2, b'"Diy"', b'"Di\xffy"'), "line 2", "not valid JSON: 'utf-8' codec"),
    (
        "a second header line",
        lambda p: _gz(p, b"".join(_lines2(p)[:1] * 2)),
        "line 2: $",
        "missing required key 'node'",
    ),
    ("extra data after a node object", _edit(2, b"}}\n", b"}} {}\n"), "line 2", "not valid JSON"),
    (
        "a 5000-digit node field",
        _edit(2, b'"cru":4', b'"cru":' + b"9" * 5000),
        "line 2: $.node.resources.cru",
        "node 1: an integer of 5,000 digits is too long to read",
    ),
    (
        "a key twice in a node line",
        _edit(2, b'"farm_id":42,', b'"farm_id":42,"farm_id":43,'),
        "line 2: $.node.farm_id",
        "node 1: the key 'farm_id' appears twice in one object",
    ),
    ("a byte order mark in /2", lambda p: _gz(p, b"\xef\xbb\xbf" + b"".join(_lines2(p))), "line 1", "byte order mark"),
    # tfgrid-snapshot/1
    (
        "/1: NaN in source",
        _v1_text('"network"', '"source": {"indexer_height": NaN}, "network"'),
        "$.source.indexer_height",
        "NaN is not a JSON number",
    ),
    (
        "/1: NaN in a node",
        _v1_text('"connection_price": 80', '"connection_price": NaN'),
        "$.nodes[0].connection_price",
        "node 1: NaN is not a JSON number",
    ),
    (
        "/1: a 5000-digit uptime",
        _v1_text('"uptime": ', '"uptime": ' + "9" * 5000 + ', "u": '),
        "$.uptime_events[0].uptime",
        "node 1: an integer of 5,000 digits",
    ),
    (
        "/1: a 5000-digit resource",
        _v1_text('"cru": 4', '"cru": ' + "9" * 5000),
        "$.nodes[0].resources.cru",
        "node 1: an integer of 5,000 digits",
    ),
    (
        "/1: deeply nested source",
        _v1_text('"network"', '"source": ' + "[" * DEEP + "]" * DEEP + ', "network"'),
        "$.source",
        "not valid JSON",
    ),
    (
        "/1: deeply nested event",
        _v1_text('"uptime_events": [', '"uptime_events": [' + "[" * DEEP + "]" * DEEP + ", "),
        "$.uptime_events[0]",
        "not valid JSON",
    ),
    ("/1: top level an array", _v1(lambda d: "[1, 2]", raw=True), "$", "expected a JSON object"),
    ("/1: 1e3 node id", _v1_text('"node_id": 1,', '"node_id": 1e3,'), "$.nodes[0].node_id", "got number 1000.0"),
    (
        "/1: two start states",
        _v1(lambda d: d.update(power_at_start=[{"node_id": 1, "state": "Up", "down_since": None, "target": "Up"}] * 2)),
        "$.power_at_start[1].node_id",
        "node 1 has a second start state",
    ),
    ("/1: a byte order mark", _v1(lambda d: "\ufeff" + json.dumps(d), raw=True), "$", "byte order mark"),
]


@pytest.mark.parametrize(("case", "build", "where", "words"), REFUSED, ids=[row[0] for row in REFUSED])
def test_bad_input_a_hostile_snapshot_is_refused_by_the_loader_naming_the_place(tmp_path, case, build, where, words):
    path = build(tmp_path)
    with pytest.raises(SnapshotError) as caught:
        calculate_period(load_snapshot(path))
    refused = caught.value
    assert refused.file == str(path)
    assert refused.json_path == where, str(refused)
    assert words in refused.problem, str(refused)
    assert "\n" not in str(refused) and len(str(refused)) < 600


CLI_CASES = [
    row
    for row in REFUSED
    if row[0]
    in {
        "truncated gzip",
        "node line an array",
        "NaN in a node record",
        "deeply nested node line",
        "a 5000-digit node field",
        "a key twice in a node line",
        "a byte order mark in /2",
        "/1: a 5000-digit uptime",
        "/1: NaN in source",
        "/1: deeply nested event",
        "invalid UTF-8 in a string",
        "negative start block",
    }
]


@pytest.mark.parametrize(("case", "build", "where", "words"), CLI_CASES, ids=[row[0] for row in CLI_CASES])
def test_bad_input_a_hostile_snapshot_is_refused_by_the_command_in_one_line(
    tmp_path, sqlite_url, case, build, where, words
):
    path = build(tmp_path)
    env = {"PAYOUTS_DATABASE_URL": sqlite_url}
    for extra in (["--dry-run"], []):
        result = payouts("calculate", "--snapshot", str(path), "--json", *extra, env=env)
        assert result.returncode == 2
        assert_short_failure(result, str(path), where, words[:40])
    _nothing_recorded(sqlite_url)


# -- accepted, with the documented result ---------------------------------------------------


def _receipts(path) -> list[tuple]:
    calculation = calculate_period(load_snapshot(path))
    return [(r.node_id, r.eligibility, r.measured_uptime_s, r.reward_musd, r.reason) for r in calculation.receipts]


def test_concatenated_gzip_members_read_as_one_stream(tmp_path):
    """gzip's own rule (RFC 1952: members one after the other are one file)."""
    lines = _lines2(tmp_path)
    whole = _gz(tmp_path, b"".join(lines), "whole.jsonl.gz")
    members = _write_bytes(tmp_path, b"".join(gzip.compress(line, mtime=0) for line in lines), "members.jsonl.gz")
    assert _receipts(members) == _receipts(whole)
    assert load_snapshot(members).sha256 == load_snapshot(whole).sha256


@pytest.mark.parametrize(
    ("case", "old", "new"),
    [
        ("-0 is 0 in a record", b'"hru_seconds":0', b'"hru_seconds":-0'),
        ("-0 is 0 in an event index", b'"index":[0', b'"index":[-0'),
        ("spaces around the columns", b'"kind":[2,2,2]', b'"kind" : [ 2 , 2 , 2 ]'),
        ("a key spelt with escapes", b'"farm_id"', b'"farm\\u005fid"'),
    ],
)
def test_odd_but_equal_spellings_give_the_same_receipts(tmp_path, case, old, new):
    lines = _lines2(tmp_path)
    plain = _gz(tmp_path, b"".join(lines), "plain.jsonl.gz")
    odd_lines = [lines[0], _replace(lines[1], old, new), lines[2]]
    odd = _gz(tmp_path, b"".join(odd_lines), "odd.jsonl.gz")
    assert _receipts(odd) == _receipts(plain)


def test_crlf_line_ends_give_the_same_receipts(tmp_path):
    lines = _lines2(tmp_path)
    plain = _gz(tmp_path, b"".join(lines), "plain.jsonl.gz")
    crlf = _gz(tmp_path, b"".join(line.replace(b"\n", b"\r\n") for line in lines), "crlf.jsonl.gz")
    assert _receipts(crlf) == _receipts(plain)


def test_events_out_of_chain_order_and_outside_the_edges(tmp_path):
    """Out of order: put in chain order. Blocks before the start block or past the post-period
    window: skipped (FORMAT.md: a builder may include blocks minting does not read)."""
    ordered = [(START_HEIGHT + 400 * k, 0, 2400 * k) for k in range(1, 50)]
    header = _lines2(tmp_path)[0]
    plain = _gz(tmp_path, header + _node_events(ordered), "plain.jsonl.gz")
    shuffled = _gz(tmp_path, header + _node_events(ordered[::-1]), "shuffled.jsonl.gz")
    outside = [(START_HEIGHT - 1, 0, 10**6), *ordered, (END_HEIGHT + 27 * 600 + 1, 0, 1)]
    widened = _gz(tmp_path, header + _node_events(outside), "widened.jsonl.gz")
    expected = _receipts(plain)
    assert expected[0][2] > 0
    assert _receipts(shuffled) == expected
    assert _receipts(widened) == expected


@pytest.mark.parametrize(
    ("case", "event", "words"),
    [
        ("negative height", (-1, 0, 60), "block -1 index 0 is outside the chain's u32"),
        ("height past u32", (2**32, 0, 60), "block 4294967296 index 0 is outside the chain's u32"),
        ("uptime past u64 (400 digits)", (START_HEIGHT + 5, 0, 10**400), "is out of range"),
        ("uptime 2^64", (START_HEIGHT + 5, 0, 2**64), "18446744073709551616 is out of range"),
    ],
)
def test_an_event_value_outside_its_chain_type_makes_only_that_node_invalid(tmp_path, case, event, words):
    lines = _lines2(tmp_path)
    hostile = (
        json.dumps(
            {
                "node": factories.node(1),
                "power_at_start": None,
                "events": {
                    "height": [event[0]],
                    "index": [event[1]],
                    "timestamp": [ts(START_HEIGHT + 5)],
                    "kind": [2],
                    "value": [event[2]],
                },
            }
        ).encode()
        + b"\n"
    )
    receipts = {r[0]: r for r in _receipts(_gz(tmp_path, b"".join([lines[0], hostile, lines[2]])))}
    assert receipts[1][1] == "invalid_record" and words in receipts[1][4]
    assert receipts[2][1] != "invalid_record"


def test_a_file_with_only_a_header_has_no_receipts(tmp_path):
    assert _receipts(_gz(tmp_path, _lines2(tmp_path)[0])) == []
