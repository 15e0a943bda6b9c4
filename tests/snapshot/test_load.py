"""The snapshot loader: structure and type errors refuse the file with file + JSON path;
events come out node by node in processing order."""

from __future__ import annotations

import gzip
import hashlib
import json

import orjson
import pytest

from payouts.snapshot.load import EventsNotGrouped, SnapshotError, load_snapshot
from payouts.snapshot.schema import EVENT_POWER_STATE, EVENT_POWER_TARGET, EVENT_UPTIME
from tests import factories


def _events(path, buffered=False):
    return dict(load_snapshot(path).iter_node_events(buffered=buffered))


def test_json_and_gzip_give_the_same_sha256_over_the_decompressed_bytes(tmp_path):
    document = factories.snapshot()
    plain = factories.write(tmp_path / "s.json", document)
    packed = factories.write(tmp_path / "s.json.gz", document)
    loaded_plain, loaded_packed = load_snapshot(plain), load_snapshot(packed)
    assert loaded_plain.sha256 == loaded_packed.sha256 == hashlib.sha256(plain.read_bytes()).hexdigest()
    assert _events(plain) == _events(packed)


def test_pretty_printed_file_with_keys_in_any_order_reads_the_same(tmp_path):
    document = factories.snapshot()
    reordered = {key: document[key] for key in reversed(list(document))}
    compact = factories.write(tmp_path / "a.json", document)
    pretty = tmp_path / "b.json"
    pretty.write_text(json.dumps(reordered, indent=3))
    assert load_snapshot(pretty).header == load_snapshot(compact).header
    assert _events(pretty) == _events(compact)


def _refused(tmp_path, document_or_bytes, name="bad.json") -> SnapshotError:
    path = tmp_path / name
    if isinstance(document_or_bytes, bytes):
        path.write_bytes(document_or_bytes)
    else:
        path.write_bytes(json.dumps(document_or_bytes).encode())
    with pytest.raises(SnapshotError) as caught:
        loaded = load_snapshot(path)
        list(loaded.iter_node_events())
    assert str(path) in str(caught.value)
    return caught.value


def _mutated(mutate):
    document = factories.snapshot()
    mutate(document)
    return document


@pytest.mark.parametrize(
    ("mutate", "json_path", "words"),
    [
        (lambda d: d.update(format="tfgrid-snapshot/2"), "$.format", "format tag"),
        (lambda d: d.pop("nodes"), "$", "missing required key 'nodes'"),
        (lambda d: d.update(nodez=[]), "$.nodez", "unknown key"),
        (lambda d: d["nodes"][0]["resources"].update(mru="16"), "$.nodes[0].resources.mru", "integer"),
        (lambda d: d["nodes"][0].update(farm_id=None), "$.nodes[0].farm_id", "null"),
        (lambda d: d["nodes"][0].update(virtualized=1), "$.nodes[0].virtualized", "boolean"),
        (lambda d: d["nodes"][0].update(connection_price=True), "$.nodes[0].connection_price", "boolean true"),
        (lambda d: d["nodes"][0]["resources"].update(cru=4.0), "$.nodes[0].resources.cru", "number 4.0"),
        (lambda d: d["nodes"][0].pop("consumption"), "$.nodes[0]", "missing required key 'consumption'"),
        (lambda d: d["nodes"][0]["consumption"].update(gpu=1), "$.nodes[0].consumption.gpu", "unknown key"),
        (lambda d: d["twins"][0].update(relay=5), "$.twins[0].relay", "string"),
        (lambda d: d["farms"][0].update(stellar_address=None), "$.farms[0].stellar_address", "null"),
        (lambda d: d.update(network="moon"), "$.network", "moon"),
        (lambda d: d["nodes"][0].update(certification="Gold"), "$.nodes[0].certification", "Gold"),
        (lambda d: d.update(uptime_events={}), "$.uptime_events", "expected an array"),
        (lambda d: d["uptime_events"][3].update(uptime="5"), "$.uptime_events[3].uptime", 'string "5"'),
        (lambda d: d["uptime_events"][3].update(uptime=None), "$.uptime_events[3].uptime", "null"),
        (lambda d: d["uptime_events"][4].pop("timestamp"), "$.uptime_events[4]", "missing required key 'timestamp'"),
        (lambda d: d["uptime_events"][5].update(extra=1), "$.uptime_events[5].extra", "unknown key"),
        (lambda d: d["uptime_events"].insert(2, [1, 2]), "$.uptime_events[2]", "expected an object, got array"),
        (
            lambda d: d["power_events"].append({"node_id": 1234, "timestamp": 1, "kind": "target", "value": "On"}),
            "$.power_events[0].value",
            '"On"',
        ),
        (
            lambda d: d["power_events"].append({"node_id": 1234, "timestamp": 1, "kind": "boot", "value": "Up"}),
            "$.power_events[0].kind",
            '"boot"',
        ),
    ],
)
def test_malformed_snapshot_is_refused_naming_the_path_and_problem(tmp_path, mutate, json_path, words):
    error = _refused(tmp_path, _mutated(mutate))
    assert error.json_path == json_path
    assert words in error.problem


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "empty"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"format": "tfgrid-snapshot/1",', "expected a quoted key"),
        (b'{"format": "tfgrid-snapshot/1" "network": "dev"}', "expected ',' or '}'"),
        (b'{"format": "tfgrid-snapshot/1"} trailing', "extra data"),
        (b'{"format": "tfgrid-snapshot/1", "uptime_events": [{"node_id": 1', "unterminated"),
        (b'{"format": "tfgrid-snapshot/1", "format": "tfgrid-snapshot/1"}', "twice"),
        (b"\x00\x01garbage", "expected a JSON object"),
    ],
)
def test_broken_json_is_refused_with_a_position(tmp_path, raw, words):
    assert words in str(_refused(tmp_path, raw))


def test_truncated_gzip_is_refused(tmp_path):
    data = gzip.compress(orjson.dumps(factories.snapshot()))
    error = _refused(tmp_path, data[: len(data) // 2], name="cut.json.gz")
    assert "gzip" in error.problem


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(SnapshotError, match="file not found"):
        load_snapshot(tmp_path / "nope.json")


def test_integers_beyond_64_bits_do_not_crash(tmp_path):
    document = factories.snapshot()
    document["nodes"][0]["resources"]["hru"] = 2**80  # an impossible resource: an odd value
    document["uptime_events"][1]["uptime"] = 2**70  # a hostile report: the node is invalid
    loaded = load_snapshot(_write_json(tmp_path, document))
    assert loaded.header.nodes[0].resources.hru == 2**80
    events = dict(loaded.iter_node_events())
    assert "out of range" in loaded.stats.invalid_event_nodes[1234]
    assert len(events[1234]) == len(document["uptime_events"]) - 1


def _write_json(tmp_path, document):
    path = tmp_path / "big.json"
    path.write_text(json.dumps(document))  # the standard library writes big integers exactly
    return path


def test_events_come_out_sorted_deduplicated_and_power_first(tmp_path):
    start = 1735602280
    document = factories.snapshot(
        nodes=[factories.node(1), factories.node(2)],
        uptime_events=[
            {"node_id": 1, "timestamp": start + 300, "uptime": 300},
            {"node_id": 1, "timestamp": start + 100, "uptime": 100},  # out of order
            {"node_id": 1, "timestamp": start + 300, "uptime": 300},  # exact duplicate
            {"node_id": 1, "timestamp": start + 300, "uptime": 301},  # same second, kept
            {"node_id": 99, "timestamp": start, "uptime": 1},  # unknown node
            {"node_id": 2, "timestamp": start + 50, "uptime": 50},
        ],
        power_events=[
            {"node_id": 2, "timestamp": start + 50, "kind": "state", "value": "Down"},
            {"node_id": 2, "timestamp": start + 50, "kind": "target", "value": "Down"},
            {"node_id": 2, "timestamp": start + 50, "kind": "state", "value": "Down"},
        ],
    )
    loaded = load_snapshot(factories.write(tmp_path / "s.json", document))
    events = dict(loaded.iter_node_events())
    assert events[1] == [
        (start + 100, EVENT_UPTIME, 100),
        (start + 300, EVENT_UPTIME, 300),
        (start + 300, EVENT_UPTIME, 301),
    ]
    assert events[2] == [
        (start + 50, EVENT_POWER_STATE, False),
        (start + 50, EVENT_POWER_TARGET, False),
        (start + 50, EVENT_UPTIME, 50),
    ]
    assert loaded.stats.duplicates_dropped == 2
    assert loaded.stats.unknown_node_events == 1
    assert loaded.stats.unknown_node_ids == {99}


def test_ungrouped_events_need_the_buffered_pass_which_gives_the_grouped_result(tmp_path):
    grouped = factories.snapshot(nodes=[factories.node(1), factories.node(2)])
    interleaved = dict(grouped)
    by_node = {1: [], 2: []}
    for event in grouped["uptime_events"]:
        by_node[event["node_id"]].append(event)
    interleaved["uptime_events"] = [e for pair in zip(by_node[1], by_node[2]) for e in pair]
    grouped_path = factories.write(tmp_path / "g.json", grouped)
    mixed_path = factories.write(tmp_path / "m.json", interleaved)
    with pytest.raises(EventsNotGrouped):
        list(load_snapshot(mixed_path).iter_node_events())
    assert _events(mixed_path, buffered=True) == _events(grouped_path)


def test_events_are_read_in_chunks_across_boundaries(tmp_path, monkeypatch):
    from payouts.snapshot import format1 as load_module

    monkeypatch.setattr(load_module, "_CHUNK_BYTES", 97)  # many cuts, some inside strings
    document = factories.snapshot(nodes=[factories.node(n) for n in range(1, 6)])
    document["power_events"] = [
        {"node_id": 3, "timestamp": 1735602280 + i, "kind": "target", "value": "Up"} for i in range(40)
    ]
    path = factories.write(tmp_path / "s.json", document)
    events = _events(path)
    assert sum(len(v) for v in events.values()) == len(document["uptime_events"]) + 40
    monkeypatch.setattr(load_module, "_CHUNK_BYTES", 1 << 22)
    assert _events(path) == events
