"""`tfgrid-snapshot/2`: block-exact period edges, chain order, same-event duplicates, streaming,
validation, and agreement with `/1` wherever the block edges do not matter."""

from __future__ import annotations

import copy
import gzip
import json
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from payouts.calculation.engine import calculate_period
from payouts.cli.main import app
from payouts.periods import Period
from payouts.snapshot.format2 import POST_PERIOD_BLOCKS
from payouts.snapshot.format2_writer import Format2Writer
from payouts.snapshot.load import EventStats, SnapshotError, load_snapshot
from payouts.snapshot.stream import StreamedSnapshot
from payouts.snapshot.synthetic import write_synthetic_snapshot
from payouts.sources.drop_folder import freeze_from_drop_folder
from tests import factories

P = Period(81)
S, E = P.start_ts, P.end_ts
UPTIME, TARGET, STATE = 2, 0, 1
UP, DOWN = 1, 0
#: a chain where block h is stamped S - 6000 + 6 h: block 1000 is stamped exactly START
BASE_TS = S - 6000
START_HEIGHT = 1001  # the first block stamped after START
END_HEIGHT = (E - BASE_TS) // 6 + 1  # the first block stamped after END


def ts(height: int) -> int:
    return BASE_TS + 6 * height


def at(t: int) -> int:
    """The first block stamped at or after t."""
    return -(-(t - BASE_TS) // 6)


def _header(**overrides) -> dict:
    document = factories.snapshot()
    header = {
        "network": "dev",
        "period_offset": 81,
        "blocks": {
            "start": {"height": START_HEIGHT, "timestamp": ts(START_HEIGHT)},
            "end": {"height": END_HEIGHT, "timestamp": ts(END_HEIGHT)},
        },
        "farming_policies": document["farming_policies"],
        "farms": document["farms"],
        "twins": document["twins"],
    }
    header.update(overrides)
    return header


def write2(path, nodes: dict[int, list[tuple]], *, power=None, header=None, records=None) -> StreamedSnapshot:
    """nodes: node id -> events (height, index, kind, value) with the block's timestamp added."""
    power = power or {}
    with Format2Writer(path, header or _header()) as writer:
        for node_id, events in nodes.items():
            record = (records or {}).get(node_id) or factories.node(node_id)
            writer.node(record, power.get(node_id), [(h, i, ts(h), k, v) for h, i, k, v in events])
    snapshot = load_snapshot(path)
    assert isinstance(snapshot, StreamedSnapshot)
    return snapshot


def _receipts(snapshot):
    return {r.node_id: r for r in calculate_period(snapshot).receipts}


def _steady(node_id: int, first_height: int, *, boot_ts: int | None = None, count: int = 3):
    """Reports every 400 blocks (2,400 s) from first_height, uptime counted from boot_ts."""
    boot_ts = ts(first_height) - 600 if boot_ts is None else boot_ts
    return [(first_height + 400 * k, node_id, UPTIME, ts(first_height + 400 * k) - boot_ts) for k in range(count)]


def test_a_report_in_the_block_stamped_exactly_start_is_outside_the_period(tmp_path):
    assert ts(START_HEIGHT - 1) == S
    snapshot = write2(
        tmp_path / "m.jsonl.gz", {1: [(START_HEIGHT - 1, 1, UPTIME, 5000)], 2: [(START_HEIGHT, 1, UPTIME, 5000)]}
    )
    receipts = _receipts(snapshot)
    assert receipts[1].eligibility == "no_uptime" and receipts[1].measured_uptime_s == 0
    assert receipts[2].measured_uptime_s == ts(START_HEIGHT) - S == 6


def test_a_report_in_the_first_block_after_end_is_in_the_period(tmp_path):
    last = END_HEIGHT - 400
    events = {
        1: [(last, 1, UPTIME, 10**6), (END_HEIGHT, 1, UPTIME, 10**6 + 400 * 6)],  # in period: credit ud
        2: [(last, 1, UPTIME, 10**6), (END_HEIGHT + 1, 1, UPTIME, 10**6 + 401 * 6)],  # post: up to END
    }
    receipts = _receipts(write2(tmp_path / "m.jsonl.gz", events))
    first = min(ts(last) - S, 10**6, 2460)
    assert ts(END_HEIGHT) > E
    assert receipts[1].measured_uptime_s == first + 2400  # the whole delta, though stamped after END
    assert receipts[2].measured_uptime_s == first + min(E - ts(last), 2460)


def test_the_post_period_window_is_counted_in_blocks(tmp_path):
    last = END_HEIGHT - 100
    base = [(last, 1, UPTIME, 10**6)]
    inside = END_HEIGHT + POST_PERIOD_BLOCKS
    events = {
        1: [*base, (inside, 1, UPTIME, 10**6 + (inside - last) * 6)],
        2: [*base, (inside + 1, 1, UPTIME, 10**6 + (inside + 1 - last) * 6)],
    }
    receipts = _receipts(write2(tmp_path / "m.jsonl.gz", events))
    first = min(ts(last) - S, 10**6, 2460)
    # both reports are far apart (a 27 h gap is a reboot-shaped report): only the one inside
    # the window is read at all
    assert receipts[1].measured_uptime_s != first
    assert receipts[2].measured_uptime_s == first


@pytest.mark.parametrize("sleep_first", [True, False])
def test_events_of_one_block_follow_their_index(tmp_path, sleep_first):
    """A state change to Down and an uptime report in one block: the order of the indexes
    decides whether the report is read (no "power events first" rule)."""
    h0 = START_HEIGHT + 10
    h1 = h0 + 400
    report = (h1, 5 if sleep_first else 3, UPTIME, 600 + 2400)
    sleep = (h1, 4, STATE, DOWN)
    target = (h0 + 1, 1, TARGET, DOWN)
    events = [(h0, 1, UPTIME, 600), target, *((sleep, report) if sleep_first else (report, sleep))]
    result = _receipts(write2(tmp_path / "m.jsonl.gz", {1: events}))[1]
    first = min(ts(h0) - S, 600, 2460)
    slept_credit = ts(h1) - ts(h0)  # the sleep credits the time since the last report
    assert result.measured_uptime_s == (first + slept_credit if sleep_first else first + 2400)


def test_the_start_blocks_timestamp_is_the_implied_wake_request(tmp_path):
    """A node asleep at the start with target Up must boot within 30 min of the start block's
    timestamp (6 s after START here), not of START."""
    boot = ts(START_HEIGHT) + 1800  # exactly 30 min after the start block: in time
    h = at(boot + 300)
    events = {1: [(h, 1, UPTIME, ts(h) - boot)]}
    power = {1: {"state": "Down", "down_since": S - 3600, "target": "Up"}}
    snapshot = write2(tmp_path / "m.jsonl.gz", events, power=power)
    assert snapshot.wake_at_start_ts == ts(START_HEIGHT)
    result = _receipts(snapshot)[1]
    assert result.measured_uptime_s == ts(h) - S  # credited from START: it woke in time
    # read as /1 (START as the request) the same boot is 6 s late: no credit
    document = factories.snapshot(
        uptime_events=[{"node_id": 1, "timestamp": ts(h), "uptime": ts(h) - boot}],
        nodes=[factories.node(1)],
        power_at_start=[{"node_id": 1, **power[1]}],
    )
    v1 = {
        r.node_id: r for r in calculate_period(load_snapshot(factories.write(tmp_path / "m.json", document))).receipts
    }
    assert v1[1].measured_uptime_s == 0


def test_only_the_same_chain_event_twice_is_dropped(tmp_path):
    h = START_HEIGHT + 50
    events = {
        # the same event (block and index) twice: kept once
        1: [(h, 7, UPTIME, 1000), (h, 7, UPTIME, 1000), (h + 400, 7, UPTIME, 3400)],
        # equal content at two places in the chain: both are events
        2: [(h, 7, UPTIME, 1000), (h, 8, UPTIME, 1000), (h + 400, 7, UPTIME, 3400)],
        # two different events at one place: the node is invalid
        3: [(h, 7, UPTIME, 1000), (h, 7, UPTIME, 1001)],
    }
    snapshot = write2(tmp_path / "m.jsonl.gz", events)
    receipts = _receipts(snapshot)
    assert snapshot.stats.duplicates_dropped == 1
    first = min(ts(h) - S, 1000, 2460)
    assert receipts[1].measured_uptime_s == first + 2400 and receipts[1].violation is None
    # the second copy is a report with ud = 0 after rd = 0: InvalidReboot, as minting would see it
    assert receipts[2].violation == "InvalidReboot"
    assert receipts[3].eligibility == "invalid_record" and "two different events" in receipts[3].reason


def test_events_out_of_chain_order_are_put_in_order(tmp_path):
    events = _steady(1, START_HEIGHT + 20)
    ordered = _receipts(write2(tmp_path / "a.jsonl.gz", {1: events}))[1]
    shuffled = _receipts(write2(tmp_path / "b.jsonl.gz", {1: events[::-1]}))[1]
    assert ordered.receipt_bytes == shuffled.receipt_bytes and ordered.measured_uptime_s > 0


def test_hostile_values_in_events_are_per_node(tmp_path):
    h = START_HEIGHT + 20
    events = {
        1: [(h, 1, UPTIME, 10**5), (h + 400, 1, UPTIME, 2**64 - 1)],  # u64::MAX: like -1, a reboot
        2: [(h, 1, UPTIME, 2**64)],
        3: _steady(3, h),
    }
    receipts = _receipts(write2(tmp_path / "m.jsonl.gz", events))
    assert receipts[1].measured_uptime_s == min(ts(h) - S, 10**5, 2460) + 2460
    assert receipts[2].eligibility == "invalid_record" and "out of range" in receipts[2].reason
    assert receipts[3].eligibility == "below_sla"  # three reports: measured, not refused


@pytest.mark.parametrize(
    ("mutate", "where", "words"),
    [
        (lambda h, n: h.pop("blocks"), "line 1", "missing required key 'blocks'"),
        (lambda h, n: h.update(extra=1), "line 1", "unknown key"),
        (lambda h, n: h["blocks"]["start"].update(timestamp=S), "blocks.start.timestamp", "stamped after"),
        (lambda h, n: n["events"].update(kind=[9]), "events.kind[0]", "expected 0, 1 or 2"),
        (lambda h, n: n["events"].update(value=["x"]), "events.value[0]", 'string "x"'),
        (lambda h, n: n["events"].update(index=[]), "events.index", "entries"),
        (lambda h, n: n["events"].pop("height"), "events", "missing column 'height'"),
        (lambda h, n: n.update(colour="red"), "line 2", "unknown key"),
        (lambda h, n: n["node"].update(node_id=2**32), "line 2", "4294967295"),
    ],
)
def test_malformed_lines_are_refused_naming_the_line(tmp_path, mutate, where, words):
    header = {"format": "tfgrid-snapshot/2", **_header()}
    line = {
        "node": factories.node(1),
        "power_at_start": None,
        "events": {"height": [START_HEIGHT], "index": [0], "timestamp": [ts(START_HEIGHT)], "kind": [2], "value": [60]},
    }
    mutate(header, line)
    path = tmp_path / "bad.jsonl.gz"
    path.write_bytes(gzip.compress((json.dumps(header) + "\n" + json.dumps(line) + "\n").encode()))
    with pytest.raises(SnapshotError) as caught:
        calculate_period(load_snapshot(path))
    assert where in caught.value.json_path and words in caught.value.problem


def test_the_loader_streams_with_flat_memory(tmp_path):
    def peak(nodes: int) -> int:
        path = tmp_path / f"grid-{nodes}.jsonl.gz"
        write_synthetic_snapshot(path, nodes=nodes, period=P, seed=3, snapshot_format=2)
        snapshot = load_snapshot(path)
        tracemalloc.start()
        for _ in snapshot.iter_node_windows():
            pass
        _, high = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return high

    small, large = peak(40), peak(400)
    assert large < 2 * small  # ten times the nodes, not ten times the memory


def test_synth_writes_format_2_by_default_and_1_on_request(tmp_path):
    runner = CliRunner()
    for args, tag in (([], b"tfgrid-snapshot/2"), (["--format", "1"], b"tfgrid-snapshot/1")):
        out = tmp_path / f"m{len(args)}.json.gz"
        result = runner.invoke(app, ["synth", "--nodes", "20", "--period", "2025-01", "--out", str(out), *args])
        assert result.exit_code == 0, result.output
        assert gzip.decompress(out.read_bytes())[:40].find(tag) > 0
        assert len(calculate_period(load_snapshot(out)).receipts) == 20


def test_synth_format_2_is_deterministic(tmp_path):
    a, b = tmp_path / "a.jsonl.gz", tmp_path / "b.jsonl.gz"
    write_synthetic_snapshot(a, nodes=15, period=P, seed=9, snapshot_format=2)
    write_synthetic_snapshot(b, nodes=15, period=P, seed=9, snapshot_format=2)
    assert a.read_bytes() == b.read_bytes()


def test_the_drop_folder_freezes_a_format_2_file(tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    write_synthetic_snapshot(drop / "2025-01.jsonl.gz", nodes=10, period=P, seed=2, snapshot_format=2)
    frozen = freeze_from_drop_folder(drop, P, "dev", tmp_path / "run")
    assert frozen.name == "tfgrid-snapshot-81.jsonl.gz"
    assert load_snapshot(frozen).sha256 == load_snapshot(drop / "2025-01.jsonl.gz").sha256


# -- /1 and /2 agree where the block edges do not matter ------------------------------------


@st.composite
def _months(draw):
    """A few nodes' events on block times, away from the edges (START's block, the seconds after
    END, the end of the post-period window), without same-second duplicates."""
    nodes = {}
    power = {}
    for node_id in range(1, draw(st.integers(min_value=1, max_value=4)) + 1):
        height = START_HEIGHT + draw(st.integers(min_value=1, max_value=3000))
        boot = ts(height) - draw(st.integers(min_value=0, max_value=10**6))
        events = []
        for _ in range(draw(st.integers(min_value=0, max_value=25))):
            height += draw(st.sampled_from([1, 395, 400, 405, 1200, 60_000]))
            if END_HEIGHT - 2 <= height <= END_HEIGHT + 2:
                height = END_HEIGHT + 3
            if height >= END_HEIGHT + POST_PERIOD_BLOCKS - 5:
                break
            choice = draw(st.integers(min_value=0, max_value=9))
            if choice == 0:
                events.append((height, 0, TARGET, draw(st.sampled_from([UP, DOWN]))))
            elif choice == 1:
                events.append((height, 0, STATE, draw(st.sampled_from([UP, DOWN]))))
            else:
                if draw(st.integers(min_value=0, max_value=9)) == 0:
                    boot = ts(height) - draw(st.integers(min_value=0, max_value=2000))
                events.append((height, 1, UPTIME, max(ts(height) - boot + draw(st.integers(-70, 70)), 0)))
        nodes[node_id] = events
        if draw(st.booleans()):
            # asleep at the start without a wake request: no implied request to differ on
            power[node_id] = {"state": "Down", "down_since": draw(st.integers(S - 10**5, S - 1)), "target": "Down"}
    return nodes, power


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_months())
def test_a_month_as_1_and_as_2_gives_identical_receipts(tmp_path, month):
    nodes, power = month
    snapshot_2 = write2(tmp_path / "m.jsonl.gz", nodes, power=power)
    document = factories.snapshot(
        nodes=[factories.node(node_id) for node_id in nodes],
        uptime_events=[
            {"node_id": n, "timestamp": ts(h), "uptime": v}
            for n, events in nodes.items()
            for h, _i, k, v in events
            if k == UPTIME
        ],
        power_events=[
            {
                "node_id": n,
                "timestamp": ts(h),
                "kind": "target" if k == TARGET else "state",
                "value": "Up" if v else "Down",
            }
            for n, events in nodes.items()
            for h, _i, k, v in events
            if k != UPTIME
        ],
        power_at_start=[{"node_id": n, **copy.deepcopy(p)} for n, p in power.items()],
    )
    snapshot_1 = load_snapshot(factories.write(tmp_path / "m.json", document))
    one, two = _receipts(snapshot_1), _receipts(snapshot_2)
    assert {n: r.receipt_bytes for n, r in one.items()} == {n: r.receipt_bytes for n, r in two.items()}
    assert {n: (r.violation, r.eligibility) for n, r in one.items()} == {
        n: (r.violation, r.eligibility) for n, r in two.items()
    }


def test_a_file_that_changes_between_its_reads_is_refused(tmp_path):
    path = tmp_path / "m.jsonl.gz"
    snapshot = write2(path, {1: _steady(1, START_HEIGHT + 20)})
    write2(path, {1: _steady(1, START_HEIGHT + 21)})  # replaced after loading, before calculating
    with pytest.raises(SnapshotError, match="changed while it was being read"):
        calculate_period(snapshot)


def test_node_records_past_64_bits_are_read_exactly(tmp_path):
    record = factories.node(1)
    record["consumption"]["hru_seconds"] = 2**100  # u128: a value; orjson alone would make it a float
    record["resources"]["hru"] = 2**64  # past u64: invalid, named exactly
    other = factories.node(2)
    other["consumption"]["cru_seconds"] = 2**100
    snapshot = write2(
        tmp_path / "m.jsonl.gz",
        {1: _steady(1, START_HEIGHT + 9), 2: _steady(2, START_HEIGHT + 9)},
        records={1: record, 2: other},
    )
    assert snapshot.header.nodes[1].consumption.cru_seconds == 2**100
    receipts = _receipts(snapshot)
    assert receipts[1].eligibility == "invalid_record" and "resources.hru is 18446744073709551616" in receipts[1].reason
    assert receipts[2].eligibility == "below_sla"  # measured and valid


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(START_HEIGHT - 5, END_HEIGHT + POST_PERIOD_BLOCKS + 5),
            st.integers(0, 3),
            st.integers(0, 2),
            st.integers(0, 10**6),
        ),
        max_size=40,
    )
)
def test_the_fast_event_reader_equals_the_checked_one(rows):
    """Both readers of a node line give the same events and split whenever the fast one reads it."""
    rows = sorted({(h, i): (h, i, k, v if k == UPTIME else v % 2) for h, i, k, v in rows}.values())
    columns = [
        [h for h, *_ in rows],
        [i for _, i, *_ in rows],
        [ts(h) for h, *_ in rows],
        [k for *_, k, _ in rows],
        [v for *_, v in rows],
    ]
    reader = StreamedSnapshot.__new__(StreamedSnapshot)
    reader.stats = EventStats()
    edges = (START_HEIGHT, END_HEIGHT, END_HEIGHT + POST_PERIOD_BLOCKS)
    fast = StreamedSnapshot._events_fast(*columns, *edges)
    assert fast is not None
    assert fast == reader._events_checked(2, 1, *columns, *edges, False)
