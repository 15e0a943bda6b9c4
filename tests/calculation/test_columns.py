"""The columns machine (runs of ordinary reports taken in one numpy step) gives exactly what the
event-by-event state machine gives: measured uptime, violation, boot failures, and, through the
engine, every receipt's bytes and reward, on adversarial inputs."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payouts.calculation.columns import EventColumns, measure_uptime_columns
from payouts.calculation.engine import calculate_period
from payouts.calculation.uptime import (
    CLOCK_SKEW_S,
    GRACE_S,
    MAX_CREDIT_S,
    NARROW_LIMIT,
    UptimeMeasurement,
    Window,
    measure_uptime,
)
from payouts.periods import Period
from payouts.snapshot.format2 import POST_PERIOD_BLOCKS
from payouts.snapshot.format2_writer import Format2Writer
from payouts.snapshot.load import load_snapshot
from payouts.snapshot.schema import EVENT_POWER_STATE, EVENT_POWER_TARGET, EVENT_UPTIME, PowerAtStart, Twin
from payouts.snapshot.stream import StreamedSnapshot
from tests import factories

P = Period(81)
S, E = P.start_ts, P.end_ts
TWINS = [None, Twin(twin_id=1, relay="relay.grid.tf", pk=None), Twin(twin_id=1, relay="", pk=None)]
#: steps of the uptime against the time that passed, around every edge the clauses test
_DRIFTS = [0, 1, -1, GRACE_S, GRACE_S + 1, -GRACE_S, -GRACE_S - 1, CLOCK_SKEW_S, -CLOCK_SKEW_S, 59, -59, 61, -61]


def _columns(rows: list[tuple[int, int, int]], split: int) -> EventColumns:
    as_array = np.array(rows, dtype=np.int64).reshape(-1, 3)
    return EventColumns(
        np.ascontiguousarray(as_array[:, 0]),
        np.ascontiguousarray(as_array[:, 1]),
        np.ascontiguousarray(as_array[:, 2]),
        split,
    )


# Strategies are built once: one built inside the drawing loop is checked and labelled again on
# every draw, which costs more than the whole comparison of the two machines.
_BOOLEANS = st.booleans()
_START_JITTER = st.integers(-7200, 7200)
_BOOTS_SMALL = st.sampled_from([0, 600, 10**6, 10**5])
_BOOTS_BIG = st.sampled_from([0, 600, 10**6, NARROW_LIMIT - 10**9])
_LENGTHS = st.integers(0, 60)
_CHOICES = st.integers(0, 19)
_BITS = st.integers(0, 1)
_STEPS = st.sampled_from([2400, 2400, 2400, 2460, 2461, 1, 0, 60, 3000, 90_000, -5])
_REBOOTS = st.integers(0, 3000)
_CLOCK_DRIFTS = st.sampled_from(_DRIFTS)
_RUNS = st.integers(1, 30)
_UPTIME_DRIFTS = st.sampled_from(_DRIFTS[:7])
_INTERVALS = st.sampled_from([2400, 2400, 2401, 2399, 2460, 2340])
_POWER_AT_START = st.one_of(
    st.none(),
    st.builds(
        PowerAtStart,
        node_id=st.just(1),
        state=st.sampled_from(["Up", "Down"]),
        down_since=st.one_of(st.none(), st.integers(S - 10**5, S + 10**5)),
        target=st.sampled_from(["Up", "Down"]),
    ),
)


@st.composite
def _streams(draw):
    """Adversarial event streams: long ordinary runs with drift at the grace and skew edges,
    reboots, uptime too high / too low, power target and state changes (sleep and wake), clock
    jumps backwards, values near the narrow limit, and the split anywhere."""
    big = draw(_BOOLEANS)
    base = NARROW_LIMIT - 10**9 if big and draw(_BOOLEANS) else S
    t = base + draw(_START_JITTER)
    boot = t - draw(_BOOTS_BIG if big else _BOOTS_SMALL)
    rows: list[tuple[int, int, int]] = []
    for _ in range(draw(_LENGTHS)):
        choice = draw(_CHOICES)
        if choice == 0:
            rows.append((t, EVENT_POWER_TARGET, draw(_BITS)))
            continue
        if choice == 1:
            rows.append((t, EVENT_POWER_STATE, draw(_BITS)))
            continue
        step = draw(_STEPS)
        t += step
        if choice == 2:
            boot = t - draw(_REBOOTS)  # reboot
        elif choice == 3:
            boot += draw(_CLOCK_DRIFTS)  # the clock drifts
        run = draw(_RUNS) if choice >= 10 else 1
        for _ in range(run):
            uptime = t - boot + draw(_UPTIME_DRIFTS)
            rows.append((max(t, 0), EVENT_UPTIME, min(max(uptime, 0), NARROW_LIMIT - 1)))
            t += draw(_INTERVALS)
    rows = [(min(max(t, 0), NARROW_LIMIT - 1), kind, value) for t, kind, value in rows]
    split = draw(st.integers(0, len(rows)))
    power = draw(_POWER_AT_START)
    return rows, split, power


def _state_machine(columns: EventColumns, **kwargs) -> UptimeMeasurement:
    events = columns.events()
    return measure_uptime(events, window=Window(0, columns.split, len(events)), wide=False, **kwargs)


@settings(max_examples=600, deadline=None)
@given(_streams(), st.sampled_from(TWINS), st.sampled_from([None, S + 3]))
def test_the_columns_machine_equals_the_state_machine(stream, twin, wake_at_start_ts):
    rows, split, power = stream
    columns = _columns(rows, split)
    kwargs = {"period": P, "power_at_start": power, "twin": twin, "wake_at_start_ts": wake_at_start_ts}
    assert measure_uptime_columns(columns, **kwargs) == _state_machine(columns, **kwargs)


def test_a_steady_month_is_taken_in_runs_and_credited_exactly():
    rows = [(t, EVENT_UPTIME, t - (S - 600)) for t in range(S + 60, E + 2400 + 1, 2400)]
    split = sum(1 for t, _, _ in rows if t <= E)
    columns = _columns(rows, split)
    kwargs = {"period": P, "power_at_start": None, "twin": TWINS[1]}
    fast = measure_uptime_columns(columns, **kwargs)
    assert fast == _state_machine(columns, **kwargs)
    assert fast.violation is None
    # the first report credits 60 s, every later one its 2,400 s, the post-period one up to END
    assert fast.measured_uptime_s == 60 + 2400 * (split - 1) + min(MAX_CREDIT_S, E - rows[split - 1][0])


def test_clock_skew_inside_a_run_is_found():
    boot = S - 600
    rows = [(S + 100 + 2400 * k, EVENT_UPTIME, S + 100 + 2400 * k - boot - 50 * k) for k in range(6)]
    columns = _columns(rows, len(rows))
    kwargs = {"period": P, "power_at_start": None, "twin": TWINS[1]}
    fast = measure_uptime_columns(columns, **kwargs)
    assert fast == _state_machine(columns, **kwargs)
    assert fast.violation == "ClockSkew"


# --- through the engine: a /2 month read as columns, and read event by event -----------------

BASE_TS = S - 6000
START_HEIGHT = 1001
END_HEIGHT = (E - BASE_TS) // 6 + 1


def _ts(height: int) -> int:
    return BASE_TS + 6 * height


_NODE_COUNTS = st.integers(1, 4)
_FIRST_HEIGHTS = st.integers(-3, 3000)
_MONTH_BOOTS = st.sampled_from([0, 600, 10**6])
_EVENT_COUNTS = st.integers(0, 80)
_HEIGHT_STEPS = st.sampled_from([1, 395, 400, 400, 400, 405, 410, 1200, 60_000])
_MONTH_CHOICES = st.integers(0, 11)
_MONTH_REBOOTS = st.integers(0, 2000)
_UP_DOWN = st.sampled_from(["Up", "Down"])
_DOWN_SINCE = st.one_of(st.none(), st.integers(S - 10**5, S - 1))


@st.composite
def _months(draw):
    nodes: dict[int, list[tuple[int, int, int, int, int]]] = {}
    power = {}
    for node_id in range(1, draw(_NODE_COUNTS) + 1):
        height = START_HEIGHT + draw(_FIRST_HEIGHTS)
        boot = _ts(height) - draw(_MONTH_BOOTS)
        events = []
        for _ in range(draw(_EVENT_COUNTS)):
            height += draw(_HEIGHT_STEPS)
            if height > END_HEIGHT + POST_PERIOD_BLOCKS + 3:
                break
            choice = draw(_MONTH_CHOICES)
            if choice == 0:
                events.append((height, 0, _ts(height), EVENT_POWER_TARGET, draw(_BITS)))
            elif choice == 1:
                events.append((height, 0, _ts(height), EVENT_POWER_STATE, draw(_BITS)))
            else:
                if choice == 2:
                    boot = _ts(height) - draw(_MONTH_REBOOTS)
                drift = draw(_CLOCK_DRIFTS)
                events.append((height, 1, _ts(height), EVENT_UPTIME, max(_ts(height) - boot + drift, 0)))
        nodes[node_id] = events
        if draw(_BOOLEANS):
            power[node_id] = {
                "state": draw(_UP_DOWN),
                "down_since": draw(_DOWN_SINCE),
                "target": draw(_UP_DOWN),
            }
    return nodes, power


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(_months())
def test_receipts_from_columns_equal_the_state_machines(tmp_path, month):
    nodes, power = month
    path = tmp_path / "m.jsonl.gz"
    header = {
        "network": "dev",
        "period_offset": 81,
        "blocks": {
            "start": {"height": START_HEIGHT, "timestamp": _ts(START_HEIGHT)},
            "end": {"height": END_HEIGHT, "timestamp": _ts(END_HEIGHT)},
        },
    }
    document = factories.snapshot()
    header.update({k: document[k] for k in ("farming_policies", "farms", "twins")})
    with Format2Writer(path, header) as writer:
        for node_id, events in nodes.items():
            writer.node(factories.node(node_id), power.get(node_id), events)
    snapshot = load_snapshot(path)
    assert isinstance(snapshot, StreamedSnapshot)
    # measured while loading; event by event (the state machine); and read again as columns
    one, two = calculate_period(snapshot), calculate_period(snapshot, columns=False)
    reread = load_snapshot(path)
    assert isinstance(reread, StreamedSnapshot)
    reread.keep_measured(None, reread.stats, "")  # as when a line was unusual: read the file again
    three = calculate_period(reread)
    assert [r.receipt_bytes for r in three.receipts] == [r.receipt_bytes for r in two.receipts]
    assert three.report == two.report
    assert [(r.node_id, r.receipt_bytes, r.receipt_hash) for r in one.receipts] == [
        (r.node_id, r.receipt_bytes, r.receipt_hash) for r in two.receipts
    ]
    assert [
        (r.measured_uptime_s, r.violation, r.eligibility, r.reward_musd, r.reward_tft_units) for r in one.receipts
    ] == [(r.measured_uptime_s, r.violation, r.eligibility, r.reward_musd, r.reward_tft_units) for r in two.receipts]
    assert one.report == two.report
