"""The synthetic generator: deterministic, valid, grouped, and exercising the rules."""

from __future__ import annotations

import gzip
import itertools
from collections import Counter

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payouts.calculation.engine import calculate_period
from payouts.periods import Period
from payouts.snapshot.load import load_snapshot
from payouts.snapshot.schema import SnapshotHeader
from payouts.snapshot.synthetic import write_synthetic_snapshot

PERIOD = Period.from_label("2025-11")


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    path = tmp_path_factory.mktemp("synth") / "month.json"
    summary = write_synthetic_snapshot(path, nodes=400, period=PERIOD, seed=7)
    return path, summary, orjson.loads(path.read_bytes())


@settings(max_examples=5, deadline=None)
@given(st.integers(0, 2**32), st.sampled_from([".json", ".json.gz"]))
def test_same_seed_gives_a_byte_identical_file(tmp_path_factory, seed, suffix):
    folder = tmp_path_factory.mktemp("det")
    a, b = folder / f"a{suffix}", folder / f"b{suffix}"
    write_synthetic_snapshot(a, nodes=12, period=PERIOD, seed=seed)
    write_synthetic_snapshot(b, nodes=12, period=PERIOD, seed=seed)
    assert a.read_bytes() == b.read_bytes()
    write_synthetic_snapshot(b, nodes=12, period=PERIOD, seed=seed + 1)
    assert a.read_bytes() != b.read_bytes()


def test_gzip_holds_the_same_json(tmp_path):
    write_synthetic_snapshot(tmp_path / "a.json", nodes=20, period=PERIOD, seed=1)
    write_synthetic_snapshot(tmp_path / "a.json.gz", nodes=20, period=PERIOD, seed=1)
    assert gzip.decompress((tmp_path / "a.json.gz").read_bytes()) == (tmp_path / "a.json").read_bytes()


def test_header_is_valid_and_events_are_grouped_and_sorted(month):
    _, summary, document = month
    header = {k: v for k, v in document.items() if k not in ("uptime_events", "power_events")}
    SnapshotHeader.model_validate(header)
    node_ids = {n["node_id"] for n in document["nodes"]}
    assert len(node_ids) == summary.nodes == 400
    for key in ("uptime_events", "power_events"):
        seen, previous = set(), None
        for event in document[key]:
            assert event["node_id"] in node_ids
            if previous is None or event["node_id"] != previous["node_id"]:
                assert event["node_id"] not in seen, f"{key} not grouped by node"
                seen.add(event["node_id"])
            else:
                assert event["timestamp"] >= previous["timestamp"]
            previous = event
    assert len(document["uptime_events"]) == summary.uptime_events
    assert list(document)[-1] == "uptime_events"  # streamable: events come last


def test_reports_every_40_minutes_about_1100_per_month(month):
    _, _, document = month
    per_node = Counter(e["node_id"] for e in document["uptime_events"])
    typical = sorted(per_node.values())[len(per_node) // 2]
    assert 1_050 <= typical <= 1_150
    first_node = document["uptime_events"][0]["node_id"]
    stamps = [e["timestamp"] for e in document["uptime_events"] if e["node_id"] == first_node]
    gaps = Counter(b - a for a, b in itertools.pairwise(stamps))
    assert 2380 <= gaps.most_common(1)[0][0] <= 2420


def test_the_month_exercises_the_rules(month):
    path, _, document = month
    result = calculate_period(load_snapshot(path))
    eligibility = Counter(r.eligibility for r in result.receipts)
    for word in ("ok", "no_address", "invalid_address", "no_uptime", "below_sla", "violation", "virtualized"):
        assert eligibility[word] > 0, word
    assert {"Diy", "Certified"} == {n["certification"] for n in document["nodes"]}
    assert document["power_events"] and document["power_at_start"]
    assert any(n["consumption"]["ip_seconds"] > 0 for n in document["nodes"])
    assert any(n["consumption"]["nru"] > 0 for n in document["nodes"])
    assert result.report.quirk_policy_ids == [7]
    violations = Counter(r.violation for r in result.receipts if r.violation)
    assert len(violations) >= 2


def test_farm_addresses_can_be_given(tmp_path):
    addresses = ["GAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAWHF"]
    path = tmp_path / "s.json"
    write_synthetic_snapshot(path, nodes=50, period=PERIOD, seed=3, farm_addresses=addresses)
    farms = orjson.loads(path.read_bytes())["farms"]
    assert {f["stellar_address"] for f in farms} <= {addresses[0], ""} | {
        f["stellar_address"] for f in farms if f["stellar_address"].startswith("GINVALID")
    }
    assert any(f["stellar_address"] == addresses[0] for f in farms)
