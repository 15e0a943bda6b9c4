"""The period's event tables from the indexer, paged by primary-key ranges over the period's
blocks: uptime reports, power target and state reports, and each node's power at the start."""

from __future__ import annotations

from array import array

from payouts.sources.errors import IndexerQueryError
from payouts.sources.event_ids import event_position
from payouts.sources.indexer.block_range import BLOCK_MARGIN
from payouts.sources.indexer.context import BuildContext
from payouts.sources.indexer.edges import EdgePoints
from payouts.sources.indexer.paging import where_label
from payouts.sources.indexer.queries import POWER_STATES_BY_ID, POWER_TARGETS_BY_ID, UPTIME_BY_ID
from payouts.sources.indexer.records import U64_MAX, Record
from payouts.sources.indexer.text import chunks

#: A node's uptime reports as columns (timestamps, uptimes, block heights, indexes in the block);
#: uptimes are u64 on chain, so a node with one past i64 holds its uptimes in a list.
UptimeColumns = tuple[array, array | list[int], array, array]


def _position(r: Record) -> tuple[int, int]:
    """(block height, index in the block) from the record's event id (event_ids.py)."""
    event_id = r.str("id")
    found = event_position(event_id)
    if found is None:
        raise r.fail(f"id {event_id!r} is not an event id of a layout the indexer has used (height, index, hash)")
    return found


def uptime(
    ctx: BuildContext, blocks: tuple[int, int], edge_points: tuple[EdgePoints, EdgePoints], node_ids: list[int]
) -> tuple[dict[int, UptimeColumns], int]:
    """Uptime reports of the window per node in chain order ({node: (timestamps, uptimes,
    block heights, indexes in the block)}), and how many reports in the window belong to
    nodes the snapshot does not have. Every block seen goes into `edge_points`."""
    known = set(node_ids)
    low = ctx.start_ts

    def parse(items: list, offset: int) -> list:
        rows: list[list[int]] = []
        append = rows.append
        for index, item in enumerate(items):
            # fast path for the millions of well-formed reports; anything else is
            # checked field by field so that the error names the record
            try:
                eid, node_id, ts, up = item["id"], item["nodeID"], item["timestamp"], item["uptime"]
                if (
                    type(node_id) is int
                    and type(ts) is str
                    and ts.isdigit()
                    and type(up) is str
                    and up.isdigit()
                    and type(eid) is str
                    and len(item) == 4
                ):
                    ts_i, up_i = int(ts), int(up)
                    position = event_position(eid)
                    if low <= ts_i and up_i <= U64_MAX and position is not None:
                        append([node_id, ts_i, up_i, position[0], position[1]])
                        continue
            except (KeyError, TypeError):
                pass
            r = Record("uptimeEvents", item, where_label(offset, index, item, "nodeID"))
            node_id = r.int("nodeID")
            ts_i = r.int("timestamp", bigint=True)
            if ts_i < low:
                raise r.fail(f"timestamp {ts_i} is before the requested period start {low}")
            up_i = r.int("uptime", bigint=True)
            if up_i > U64_MAX:
                raise r.fail(f"uptime {up_i} is outside the chain's u64 (at most {U64_MAX})")
            height, in_block = _position(r)
            # a negative uptime is written as is: the calculation refuses that node
            append([node_id, ts_i, up_i, height, in_block])
        return rows

    where = {**event_bounds(blocks), "timestamp_gte": str(low)}
    per_node: dict[int, UptimeColumns] = {
        node_id: (array("q"), array("q"), array("q"), array("q")) for node_id in node_ids
    }
    outside = 0
    see = [points.see for points in edge_points]
    for page in ctx.pager.ranged(
        "uptime", UPTIME_BY_ID, where, parse, page_size=ctx.options.event_page_size, progress="uptime reports"
    ):
        for node_id, ts, up, height, in_block in page:
            for seen in see:
                seen(height, ts)
            if node_id not in known:
                outside += 1
                continue
            columns = per_node[node_id]
            columns[0].append(ts)
            try:
                columns[1].append(up)
            except OverflowError:
                # a u64 past i64 (the chain's type): this node's uptimes go to a list of
                # exact integers, the other nodes keep their compact array
                widened = [*columns[1], up]
                columns = per_node[node_id] = (columns[0], widened, columns[2], columns[3])
            columns[2].append(height)
            columns[3].append(in_block)
    return per_node, outside


def power_events(
    ctx: BuildContext, blocks: tuple[int, int], edge_points: tuple[EdgePoints, EdgePoints], node_ids: list[int]
) -> list[list]:
    """Power target and state reports in the window, merged per node in chain order
    (block height, then index in the block); rows [node_id, timestamp, kind, value,
    height, index]."""
    known = set(node_ids)
    merged: list[list] = []
    where = {**event_bounds(blocks), "timestamp_gte": str(ctx.start_ts)}
    for entity, kind, value_field in (
        (POWER_TARGETS_BY_ID, "target", "newPowerTarget"),
        (POWER_STATES_BY_ID, "state", "newPowerState"),
    ):

        def parse(items: list, offset: int, entity=entity, kind=kind, value_field=value_field) -> list:
            rows = []
            for index, item in enumerate(items):
                r = Record(entity.field, item, where_label(offset, index, item, "id"))
                node_id = r.int("nodeID")
                ts = r.int("timestamp", bigint=True)
                if ts < ctx.start_ts:
                    raise r.fail(f"timestamp {ts} is before the requested period start {ctx.start_ts}")
                height, in_block = _position(r)
                value = r.str(value_field, choices=("Up", "Down"))
                rows.append([node_id, ts, kind, value, height, in_block])
            return rows

        for page in ctx.pager.ranged(
            f"power.{kind}", entity, where, parse, page_size=ctx.options.page_size, progress="power events"
        ):
            for row in page:
                for points in edge_points:
                    points.see(row[4], row[1])
            merged.extend(row for row in page if row[0] in known)
    merged.sort(key=lambda row: (row[0], row[4], row[5]))
    return merged


def event_bounds(blocks: tuple[int, int]) -> dict[str, str]:
    """Uptime and power events: from a margin before the period's first block through
    minting's last post-period block, exactly (by height, not by time)."""
    first, after = blocks
    return {"id_gte": f"{max(first - BLOCK_MARGIN, 0):010d}", "id_lt": f"{after:010d}"}


def power_at_start(ctx: BuildContext, nodes: list[dict]) -> list[dict]:
    """State and target at the period start: the last report before START of each node
    the indexer has a power record for (nodes never power managed are Up/Up)."""
    managed = [node["node_id"] for node in nodes if node["_power"] is not None]
    batches = chunks(managed, ctx.options.ids_per_query)
    ctx.progress.start("power at start", len(batches))
    result = []
    before = str(ctx.start_ts)
    for number, batch in enumerate(batches):
        key = f"power_at_start.{number:04d}"
        rows = ctx.store.get(key)
        if rows is None:
            fields = []
            for node_id in batch:
                for prefix, root, value in (
                    ("s", "powerStateReports", "newPowerState"),
                    ("t", "powerTargetReports", "newPowerTarget"),
                ):
                    fields.append(
                        f'{prefix}{node_id}: {root}(where: {{nodeID_eq: {node_id}, timestamp_lt: "{before}"}}, '
                        f"orderBy: [timestamp_DESC, id_DESC], limit: 1) {{ nodeID {value} timestamp }}"
                    )
            data = ctx.gql.query(
                "query power_at_start { " + " ".join(fields) + " }", what=f"power at start (batch {number})"
            )
            rows = []
            for node_id in batch:
                state = _last_report(ctx, data, f"s{node_id}", "powerStateReports", "newPowerState", node_id)
                target = _last_report(ctx, data, f"t{node_id}", "powerTargetReports", "newPowerTarget", node_id)
                state_word = state[1] if state else "Up"
                target_word = target[1] if target else "Up"
                if state_word == "Up" and target_word == "Up":
                    continue  # the same as not being listed
                rows.append(
                    {
                        "node_id": node_id,
                        "state": state_word,
                        "down_since": state[0] if state and state_word == "Down" else None,
                        "target": target_word,
                    }
                )
            ctx.store.put(key, rows)
        result.extend(rows)
        ctx.progress.advance("power at start", 1)
    return result


def _last_report(
    ctx: BuildContext, data: dict, alias: str, entity: str, value_field: str, node_id: int
) -> tuple[int, str] | None:
    items = data.get(alias)
    if not isinstance(items, list):
        raise IndexerQueryError(f"{ctx.gql.url}: power at start: no list under {alias!r}")
    if not items:
        return None
    r = Record(entity, items[0], f"last report before the period start of node {node_id}")
    if r.int("nodeID") != node_id:
        raise r.fail(f"nodeID {r.int('nodeID')} was not asked for")
    ts = r.int("timestamp", bigint=True)
    if ts >= ctx.start_ts:
        raise r.fail(f"timestamp {ts} is not before the period start {ctx.start_ts}")
    return ts, r.str(value_field, choices=("Up", "Down"))
