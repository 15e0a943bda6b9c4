"""Writing the `tfgrid-snapshot/2` file in one atomic step: a temp file, then os.replace."""

from __future__ import annotations

from itertools import repeat
from pathlib import Path

from payouts.files import atomic_path
from payouts.snapshot.format2_writer import Format2Writer
from payouts.snapshot.schema import EVENT_POWER_STATE, EVENT_POWER_TARGET, EVENT_UPTIME

_KIND = {"target": EVENT_POWER_TARGET, "state": EVENT_POWER_STATE}


def write_format_2(
    out_path: Path,
    header: dict,
    node_rows: list[dict],
    uptime: dict,
    power: list[list],
    power_at_start: list[dict],
) -> int:
    """Write a `/2` file (one line per node, its events in chain order) to a temp file and move
    it into place: never a half-written file. `power` rows are [node_id, ts, kind, value,
    height, index], sorted by node then chain order; `uptime` holds per node the columns
    (timestamps, uptimes, heights, indexes) in chain order."""
    # the writer gzips by the name's ending: the temp name keeps it
    gz = ".gz" if out_path.name.endswith(".gz") else ""
    at_start = {row["node_id"]: {k: v for k, v in row.items() if k != "node_id"} for row in power_at_start}
    power_of: dict[int, list[tuple[int, int, int, int, int]]] = {}
    for node_id, ts, kind, value, height, index in power:
        power_of.setdefault(node_id, []).append((height, index, ts, _KIND[kind], int(value == "Up")))
    with atomic_path(out_path, keep_suffix=gz) as temp, Format2Writer(temp, header) as writer:
        for record in node_rows:
            node_id = record["node_id"]
            stamps, values, heights, indexes = uptime[node_id]
            events = list(zip(heights, indexes, stamps, repeat(EVENT_UPTIME), values, strict=False))
            events.extend(power_of.get(node_id, ()))
            events.sort(key=lambda event: (event[0], event[1]))  # chain order
            writer.node(record, at_start.get(node_id), events)
    written = writer.bytes_written
    return written
