"""One `/2` node line's share of loading: its record, validated, and its measurement from its
event columns (`calculation.columns`), as long as every line of the month is ordinary.

The same steps run in the loading process or, for large months, in worker processes
(`snapshot.node_lines`); what they give for a line does not depend on where they ran.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import orjson
from pydantic import ValidationError

from payouts.calculation.columns import measure_uptime_columns
from payouts.calculation.uptime import UptimeMeasurement
from payouts.periods import Period
from payouts.snapshot.event_columns import Table, columns_from_table, split_node_line, table_from_lists
from payouts.snapshot.format2 import EVENT_COLUMNS, POST_PERIOD_BLOCKS, Header2, NodeLine
from payouts.snapshot.line_keys import plain_head_quotes
from payouts.snapshot.loaded import EventStats
from payouts.snapshot.schema import EVENT_UPTIME, NARROW_EVENT_LIMIT, Node, PowerAtStart


class Measured(NamedTuple):
    measurement: UptimeMeasurement
    uptime_events: int
    power_events: int


class PlainLine(NamedTuple):
    """A node line in the writer's plain shape: its record and, when its event columns are
    ordinary, its measurement (None: the month is measured again by the calculation)."""

    record: NodeLine
    measured: Measured | None


def plain_node_line(line: bytes) -> tuple[NodeLine, Table] | None:
    """A node line in the writer's plain shape, its record validated and its event columns read
    from the bytes (`split_node_line`); None for any other line, and for any problem: the line
    is then read as JSON with every rule, which names the problem as before."""
    split = split_node_line(line)
    if split is None:
        return None
    head, table = split
    try:
        document = orjson.loads(head)
    except ValueError:
        return None
    if not isinstance(document, dict) or "events" in document:
        return None
    if head.count(b'"') != plain_head_quotes(document):
        return None  # a key named twice, or an escape: read exactly
    document["events"] = {}
    try:
        return NodeLine.model_validate(document), table
    except ValidationError:
        return None


def power_of(record: NodeLine) -> PowerAtStart | None:
    at_start = record.power_at_start
    if at_start is None:
        return None
    return PowerAtStart(
        node_id=record.node.node_id, state=at_start.state, down_since=at_start.down_since, target=at_start.target
    )


class Measuring:
    """Measures each node while the file is loaded, as the calculation would from the node's
    columns (`measure_uptime_columns`), as long as every line is ordinary: event columns the
    columns reader takes, no node id twice, no sleep mark wide enough for wrapping arithmetic.
    `node()` and `take()` return False at the first line that is not; the calculation then
    reads the file again with every rule (and reports any problem there, as before)."""

    def __init__(self, header: Header2) -> None:
        self.period = Period(header.period_offset)
        self.twins = {twin.twin_id: twin for twin in header.twins}
        self.wake_at_start_ts = header.blocks.start.timestamp
        self.start_height = header.blocks.start.height
        self.end_height = header.blocks.end.height
        self.measured: dict[int, UptimeMeasurement] = {}
        self.stats = EventStats()

    def read_line(self, line: bytes) -> PlainLine | None:
        """The line's record and measurement when it is plain (None: read it as JSON)."""
        plain = plain_node_line(line)
        if plain is None:
            return None
        record, table = plain
        return PlainLine(record, self.measure(record.node, power_of(record), table))

    def measure(self, node: Node, at_start: PowerAtStart | None, columns: Table | object) -> Measured | None:
        """One node's measurement from its event columns (a Table read from the bytes, or the
        JSON object), whatever the other lines hold; None when the line is not ordinary."""
        if (
            at_start is not None
            and at_start.down_since is not None
            and not 0 <= at_start.down_since < NARROW_EVENT_LIMIT
        ):
            return None
        table = columns if isinstance(columns, np.ndarray) else table_of(columns)
        if table is None:
            return None
        read = columns_from_table(table, self.start_height, self.end_height, self.end_height + POST_PERIOD_BLOCKS)
        if read is None:
            return None
        kinds = table[3]
        uptime_events = int(np.count_nonzero(kinds == EVENT_UPTIME))
        measurement = measure_uptime_columns(
            read,
            period=self.period,
            power_at_start=at_start,
            twin=self.twins.get(node.twin_id),
            wake_at_start_ts=self.wake_at_start_ts,
        )
        return Measured(measurement, uptime_events, len(kinds) - uptime_events)

    def node(self, node: Node, at_start: PowerAtStart | None, columns: Table | object) -> bool:
        """Measure the next line's node; False when the month must be measured again."""
        if node.node_id in self.measured:
            return False
        return self.take(node, self.measure(node, at_start, columns))

    def take(self, node: Node, measured: Measured | None) -> bool:
        """Keep the next line's measurement (taken by `measure`, here or elsewhere); False when
        the month must be measured again."""
        if measured is None or node.node_id in self.measured:
            return False
        self.stats.uptime_events += measured.uptime_events
        self.stats.power_events += measured.power_events
        self.measured[node.node_id] = measured.measurement
        return True


def table_of(columns: object) -> Table | None:
    """The event columns of a line read as JSON, when they are five int lists of one length."""
    if not isinstance(columns, dict) or set(columns) != set(EVENT_COLUMNS):
        return None
    lists = [columns[name] for name in EVENT_COLUMNS]
    if not all(isinstance(column, list) for column in lists):
        return None
    heights, indexes, stamps, kinds, values = lists
    if not len(heights) == len(indexes) == len(stamps) == len(kinds) == len(values):
        return None
    return table_from_lists(heights, indexes, stamps, kinds, values)
