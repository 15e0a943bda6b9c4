"""A node-month's uptime and power events, as the calculation read them, in a compact list.

A month holds about 1,100 reports per node, nearly all of them routine. The list keeps the
unusual ones one by one (a reboot, a report claiming more uptime than time passed, a wake-up)
and folds each run of routine ones (counted, or ignored while asleep or after the period) into
one range: "1,080 reports every 39-41 min, all counted". Past `MAX_LINES` lines, the rest of
the month is summed up by outcome, so a flapping node's list stays small.

Item shapes (times are unix seconds, UTC):
    {"kind": "report", "t", "uptime_s", "gap_s", "outcome", "credited_s"}
    {"kind": "power", "t", "outcome", "credited_s"}
    {"kind": "range", "from", "to", "reports", "gap_s": [min, max], "outcome", "credited_s"[, "rest": true]}
`gap_s` is the time since the previous report read (None for the first one).
"""

from __future__ import annotations

from payouts.calculation.uptime import (
    OUTCOME_ASLEEP_IGNORED,
    OUTCOME_COUNTED,
    OUTCOME_LATE,
    OUTCOME_NOT_WOKEN,
    Window,
    note_uptime,
)
from payouts.periods import Period
from payouts.snapshot.load import EventsNotGrouped, LoadedSnapshot
from payouts.snapshot.schema import EVENT_UPTIME, Event, PowerAtStart, Twin

#: lines (single items and ranges) per node-month before the rest is summed up by outcome
MAX_LINES = 120
#: an outcome listed this many times in a row; its further repeats are folded into a range
REPEATS_LISTED = 2
#: outcomes folded into ranges from the first: what happens to most reports
ROUTINE = frozenset({OUTCOME_COUNTED, OUTCOME_ASLEEP_IGNORED, OUTCOME_NOT_WOKEN, OUTCOME_LATE})


def node_month_events(
    events: list[Event],
    *,
    period: Period,
    power_at_start: PowerAtStart | None,
    twin: Twin | None,
    window: Window | None = None,
    wake_at_start_ts: int | None = None,
) -> dict:
    """{"reports", "measured_uptime_s", "items"} for one node's events of one period."""
    measurement, notes = note_uptime(
        events,
        period=period,
        power_at_start=power_at_start,
        twin=twin,
        window=window,
        wake_at_start_ts=wake_at_start_ts,
    )
    lines = _Lines()
    reports = 0
    previous_t: int | None = None
    for index, outcome, credited_s in notes:
        t, kind, value = events[index]
        if kind != EVENT_UPTIME:
            lines.add({"kind": "power", "t": t, "outcome": outcome, "credited_s": credited_s}, routine=False)
            continue
        reports += 1
        gap_s = None if previous_t is None else t - previous_t
        previous_t = t
        last = lines.items[-1] if lines.items and not lines.rest else None
        if last is not None and last["kind"] == "range" and last["outcome"] == outcome:
            # the common case, in place: one more report in the range before it
            last["to"] = t
            last["reports"] += 1
            last["credited_s"] += credited_s
            if gap_s is not None:
                gaps = last["gap_s"]
                if gaps is None:
                    last["gap_s"] = [gap_s, gap_s]
                elif gap_s < gaps[0]:
                    gaps[0] = gap_s
                elif gap_s > gaps[1]:
                    gaps[1] = gap_s
            continue
        item = {
            "kind": "report",
            "t": t,
            "uptime_s": int(value),
            "gap_s": gap_s,
            "outcome": outcome,
            "credited_s": credited_s,
        }
        lines.add(item, routine=outcome in ROUTINE)
    return {
        "reports": reports,
        "measured_uptime_s": measurement.measured_uptime_s if measurement.has_report else 0,
        "items": lines.items + list(lines.rest.values()),
    }


class _Lines:
    """The list being built: single items, ranges of neighbours with one outcome, and past
    MAX_LINES one summary range per outcome for the rest of the month (`"rest": true`: its
    reports are spread between the others from `from` to `to`)."""

    def __init__(self) -> None:
        self.items: list[dict] = []
        self.rest: dict[str, dict] = {}

    def add(self, item: dict, *, routine: bool) -> None:
        items = self.items
        last = items[-1] if items and not self.rest else None
        if last is not None and last["kind"] == "range" and last["outcome"] == item["outcome"]:
            _extend(last, item)
            return
        if self.rest or len(items) >= MAX_LINES:
            summary = self.rest.get(item["outcome"])
            if summary is None:
                self.rest[item["outcome"]] = _range(item) | {"rest": True}
            else:
                _extend(summary, item)
            return
        recent = items[-REPEATS_LISTED:]
        repeats = len(recent) == REPEATS_LISTED and all(
            previous["kind"] == item["kind"] and previous["outcome"] == item["outcome"] for previous in recent
        )
        # a node that lost its `last` is too low for the rest of the month: one range says so
        items.append(_range(item) if routine or repeats else item)


def _range(item: dict) -> dict:
    gap_s = item.get("gap_s")
    return {
        "kind": "range",
        "from": item["t"],
        "to": item["t"],
        "reports": int(item["kind"] == "report"),
        "gap_s": None if gap_s is None else [gap_s, gap_s],
        "outcome": item["outcome"],
        "credited_s": item.get("credited_s", 0),
    }


def _extend(line: dict, item: dict) -> None:
    line["to"] = item["t"]
    line["reports"] += item["kind"] == "report"
    line["credited_s"] += item.get("credited_s", 0)
    gap_s = item.get("gap_s")
    if gap_s is not None:
        low, high = line["gap_s"] or (gap_s, gap_s)
        line["gap_s"] = [min(low, gap_s), max(high, gap_s)]


def snapshot_node_events(snapshot: LoadedSnapshot) -> dict[int, dict]:
    """Node id -> its events list, for every node with events in the snapshot, as the
    calculation reads them (the same windows, power at the start and twins)."""
    header = snapshot.header
    period = Period(header.period_offset)
    twins = {twin.twin_id: twin for twin in header.twins}
    node_twins: dict[int, int] = {}
    for node in header.nodes:
        node_twins.setdefault(node.node_id, node.twin_id)  # a duplicate id keeps the first, as calculated
    power = {p.node_id: p for p in header.power_at_start}

    def read(buffered: bool) -> dict[int, dict]:
        found: dict[int, dict] = {}
        for node_id, events, window in snapshot.iter_node_windows(buffered=buffered):
            if node_id not in node_twins:
                continue  # events of an unknown node are dropped by the calculation
            found[node_id] = node_month_events(
                events,
                period=period,
                power_at_start=power.get(node_id),
                twin=twins.get(node_twins[node_id]),
                window=window,
                wake_at_start_ts=snapshot.wake_at_start_ts,
            )
        return found

    try:
        return read(buffered=False)
    except EventsNotGrouped:
        return read(buffered=True)
