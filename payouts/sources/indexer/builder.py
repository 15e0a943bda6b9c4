"""Build a period's `tfgrid-snapshot/2` file from TFChain's GraphQL indexer (shared spec, sections 3 and 10).

Where each snapshot field comes from and how usage is aggregated: `payouts/sources/INDEXER.md`.

The build runs in this order: check that the indexer has processed the chain past the period's
post-period window (else `IndexerBehind`), download every entity page by page, aggregate
contract usage per node, check references and counts (grid proxy included), then write the
file in one atomic step (temp file + os.replace). Each finished page is kept in `<out>.parts/`
so a build that stops half-way (killed, network down) picks up where it stopped; the folder
goes away once the snapshot is written.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from payouts import CODE_VERSION
from payouts.periods import Period
from payouts.snapshot.format2 import POST_PERIOD_BLOCKS
from payouts.snapshot.schema import FORMAT_2_TAG
from payouts.sources.errors import IndexerBehind, IndexerDataError, IndexerQueryError
from payouts.sources.event_ids import event_position
from payouts.sources.graphql import GraphQLClient, JsonHttp
from payouts.sources.gridproxy import COMPARED, compare_counts, fetch_stats
from payouts.sources.indexer.block_range import BlockSearch, id_bounds
from payouts.sources.indexer.edges import EdgePoints, ambiguity_note, resolve_edge
from payouts.sources.indexer.options import BuildOptions, BuildSummary, NoProgress, Progress
from payouts.sources.indexer.paging import Pager, where_label
from payouts.sources.indexer.parts import Parts
from payouts.sources.indexer.policy_values import policies_for_the_chain, resolve_policies
from payouts.sources.indexer.queries import (
    BILLS_BY_ID,
    CONTRACTS,
    FARMS,
    NODES,
    NRU,
    POLICIES,
    POWER_STATES_BY_ID,
    POWER_TARGETS_BY_ID,
    STATUS_QUERY,
    TOTALS_QUERY,
    TWINS,
    UPTIME_BY_ID,
)
from payouts.sources.indexer.records import MILLISECONDS_ABOVE, U64_MAX, Record, block_seconds
from payouts.sources.indexer.text import chunks, duration, id_list, iso
from payouts.sources.indexer.writer import write_format_2
from payouts.sources.tfchain_rpc import TfchainRpc
from payouts.sources.tfchain_state import ChainPolicyValues, read_minimal_uptimes, url_without_credentials

#: Used when a node has no connection price on chain (nodes from before prices were per node).
DEFAULT_CONNECTION_PRICE_MUSD = 80
#: Bumped whenever the layout of a part file changes, so old parts are never reused.
_PARTS_LAYOUT = 5
#: Blocks of margin around the period's blocks when an event table is paged by id: an hour for
#: tables stamped with their block's time, three days for traffic reports (the node's own time).
_BLOCK_MARGIN = 600
_NRU_BLOCK_MARGIN = 3 * 14_400
#: TFChain's block time, for the estimate of when a lagging indexer will have the blocks.
_TARGET_BLOCK_S = 6


def _position(r: Record) -> tuple[int, int]:
    """(block height, index in the block) from the record's event id (event_ids.py)."""
    event_id = r.str("id")
    found = event_position(event_id)
    if found is None:
        raise r.fail(f"id {event_id!r} is not an event id of a layout the indexer has used (height, index, hash)")
    return found


#: A node's uptime reports as columns (timestamps, uptimes, block heights, indexes in the block);
#: uptimes are u64 on chain, so a node with one past i64 holds its uptimes in a list.
UptimeColumns = tuple[array, array | list[int], array, array]


@dataclass
class _Contract:
    contract_id: int
    node_id: int
    public_ips: int
    deleted: bool
    created_ts: int
    used: tuple[int, int, int, int] | None  # cru, mru, sru, hru


class Builder:
    def __init__(
        self,
        out: Path,
        *,
        period: Period,
        network: str,
        graphql_url: str,
        gridproxy_url: str | None,
        options: BuildOptions,
        progress: Progress,
        now: Callable[[], datetime],
    ) -> None:
        self.out = out
        self.period = period
        self.network = network
        self.options = options
        self.progress = progress
        self.now = now
        self.http = JsonHttp(timeout_s=options.timeout_s, retry=options.retry)
        self.gql = GraphQLClient(graphql_url, self.http)
        self.gridproxy_url = gridproxy_url
        self.start_ts, self.end_ts, self.window_end_ts = period.start_ts, period.end_ts, period.window_end_ts
        self.notes: list[str] = []
        self.parts: Parts | None = None
        #: (first block of the period's events, first block past minting's post-period
        #: blocks): see block_range. Uptime and power events are read by these heights.
        self.blocks = (0, 0)
        #: what the events tell of the blocks around the period's start and end
        self.edge_points = (EdgePoints(self.start_ts), EdgePoints(self.end_ts))
        self.rpc = TfchainRpc(options.rpc_url, self.http) if options.rpc_url else None
        self.pager = Pager(self.gql, progress, lambda: self.store)

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def store(self) -> Parts:
        """The parts folder of this build (opened once the indexer passed its status check)."""
        if self.parts is None:
            raise RuntimeError("the parts folder is opened by run()")
        return self.parts

    def check_indexer(self) -> tuple[int, int]:
        """(height, newest event time); IndexerBehind unless past the post-period window."""
        data = self.gql.query(STATUS_QUERY, what="indexer status")
        status = data.get("squidStatus")
        height = status.get("height") if isinstance(status, dict) else None
        if type(height) is not int:
            raise IndexerQueryError(f"{self.gql.url}: indexer status: no squidStatus.height in the answer")
        newest = data.get("uptimeEvents")
        processed_ts = None
        if isinstance(newest, list) and newest:
            processed_ts = Record("uptimeEvents", newest[0], "newest event").int("timestamp", bigint=True)
        needed = self.window_end_ts
        if processed_ts is None or processed_ts < needed:
            now_ts = int(self.now().timestamp())
            seen = (
                "has no uptime event yet"
                if processed_ts is None
                else f"has processed the chain up to {iso(processed_ts)}, {duration(needed - processed_ts)} short of it"
            )
            future = f"; that moment is still {duration(needed - now_ts)} away" if now_ts < needed else ""
            raise IndexerBehind(
                f"the indexer at {self.gql.url} (height {height}) {seen}: period {self.period} needs "
                f"uptime reports up to {iso(needed)} (period end + 27 h){future}. Try again later.",
                height=height,
                processed_ts=processed_ts,
                needed_ts=needed,
            )
        return height, processed_ts

    def check_indexer_height(self, height: int, processed_ts: int) -> None:
        """IndexerBehind unless the indexer has processed minting's post-period blocks: counted
        in blocks, they run past END + 27 h when blocks were missed after the end."""
        needed = self.blocks[1] - 1
        if height >= needed:
            return
        short = needed - height
        raise IndexerBehind(
            f"the indexer at {self.gql.url} has processed the chain up to block {height} "
            f"({iso(processed_ts)}): period {self.period} needs the blocks through {needed} (the block "
            f"of the first report after the period end + {POST_PERIOD_BLOCKS:,} post-period blocks), "
            f"{short:,} block(s) short of it (blocks were missed after the end, so the window runs "
            f"past the period end + 27 h). Try again later.",
            height=height,
            processed_ts=processed_ts,
            needed_ts=processed_ts + _TARGET_BLOCK_S * short,
        )

    def policies(self) -> list[dict]:
        def parse(items: list, offset: int) -> list:
            rows = []
            for index, item in enumerate(items):
                r = Record("farmingPolicies", item, where_label(offset, index, item, "farmingPolicyID"))
                rows.append(
                    {
                        "id": r.int("farmingPolicyID"),
                        "name": r.str("name"),
                        "cu": r.int("cu"),
                        "su": r.int("su"),
                        "nu": r.int("nu"),
                        "ipv4": r.int("ipv4"),
                        # nullable in the indexer's schema and never written by its mappings
                        "minimal_uptime": r.int("minimalUptime", nullable=True),
                        "immutable": bool(r.bool("immutable", nullable=True)),
                        "default": bool(r.bool("default", nullable=True)),
                        "node_certification": r.str("nodeCertification", choices=("Diy", "Certified")),
                        "farm_certification": r.str("farmCertification", choices=("NotCertified", "Gold")),
                    }
                )
            return rows

        return [
            row
            for page in self.pager.paged(
                "policies", POLICIES, {}, parse, page_size=self.options.page_size, progress="farming policies"
            )
            for row in page
        ]

    def nodes(self) -> list[dict]:
        nulls = {"connectionPrice": 0, "certification": 0, "virtualized": 0, "resourcesTotal": 0}

        def parse(items: list, offset: int) -> list:
            rows = []
            for index, item in enumerate(items):
                r = Record("nodes", item, where_label(offset, index, item, "nodeID"))
                resources = r.get("resourcesTotal")
                if resources is None:
                    # written as zeros: the calculation refuses the node (mru below 1 GiB)
                    resources_row = {"cru": 0, "mru": 0, "sru": 0, "hru": 0, "_null": True}
                else:
                    # odd values (negative, huge) pass: the calculation zeroes only this node
                    resources_row = {
                        name: r.int(f"resourcesTotal.{name}", bigint=True) for name in ("cru", "mru", "sru", "hru")
                    }
                power = r.get("power")
                power_row = None
                if power is not None:
                    power_row = [
                        r.str("power.state", choices=("Up", "Down")),
                        r.str("power.target", choices=("Up", "Down")),
                    ]
                rows.append(
                    {
                        "node_id": r.int("nodeID"),
                        "farm_id": r.int("farmID"),
                        "twin_id": r.int("twinID"),
                        "resources": resources_row,
                        "certification": r.str("certification", nullable=True, choices=("Diy", "Certified")),
                        "farming_policy_id": r.int("farmingPolicyId"),
                        "connection_price": r.int("connectionPrice", nullable=True),
                        "virtualized": r.bool("virtualized", nullable=True),
                        "created": r.int("created"),
                        "_power": power_row,
                    }
                )
            return rows

        where = {"created_lte": self.end_ts}
        nodes = [
            row
            for page in self.pager.paged(
                "nodes", NODES, where, parse, page_size=self.options.page_size, progress="nodes"
            )
            for row in page
        ]
        for node in nodes:
            if node["connection_price"] is None:
                nulls["connectionPrice"] += 1
                node["connection_price"] = DEFAULT_CONNECTION_PRICE_MUSD
            if node["certification"] is None:
                nulls["certification"] += 1
                node["certification"] = "Diy"
            if node["virtualized"] is None:
                nulls["virtualized"] += 1
                node["virtualized"] = False
            if node["resources"].pop("_null", False):
                nulls["resourcesTotal"] += 1
        meaning = {
            "connectionPrice": f"written as the default {DEFAULT_CONNECTION_PRICE_MUSD} mUSD",
            "certification": "written as Diy",
            "virtualized": "written as false",
            "resourcesTotal": "written as zeros, so the calculation refuses the node",
        }
        for name, count in nulls.items():
            if count:
                self.notes.append(f"{count} node(s) have no {name} in the indexer: {meaning[name]}")
        return nodes

    def farms(self) -> list[dict]:
        def parse(items: list, offset: int) -> list:
            rows = []
            for index, item in enumerate(items):
                r = Record("farms", item, where_label(offset, index, item, "farmID"))
                certification = r.str("certification", nullable=True, choices=("NotCertified", "Gold"))
                rows.append(
                    {
                        "farm_id": r.int("farmID"),
                        "name": r.str("name"),
                        "twin_id": r.int("twinID"),
                        "certification": certification,
                        "stellar_address": r.str("stellarAddress", nullable=True) or "",
                    }
                )
            return rows

        farms = [
            row
            for page in self.pager.paged("farms", FARMS, {}, parse, page_size=self.options.page_size, progress="farms")
            for row in page
        ]
        null_certification = 0
        for farm in farms:
            if farm["certification"] is None:
                null_certification += 1
                farm["certification"] = "NotCertified"
        if null_certification:
            self.notes.append(
                f"{null_certification} farm(s) have no certification in the indexer: written as NotCertified"
            )
        return farms

    def twins(self, twin_ids: list[int]) -> dict[int, dict]:
        def parse(items: list, offset: int) -> list:
            rows = []
            for index, item in enumerate(items):
                r = Record("twins", item, where_label(offset, index, item, "twinID"))
                pk = r.str("publicKey", nullable=True)
                if pk is not None and pk[:2] in ("0x", "0X"):
                    pk = pk[2:]  # the snapshot holds bare hex
                rows.append({"twin_id": r.int("twinID"), "relay": r.str("relay", nullable=True), "pk": pk})
            return rows

        twins: dict[int, dict] = {}
        batches = chunks(twin_ids, self.options.ids_per_query)
        self.progress.start("twins", len(batches))
        for number, chunk in enumerate(batches):
            for page in self.pager.paged(
                f"twins.{number:04d}",
                TWINS,
                {"twinID_in": chunk},
                parse,
                page_size=self.options.page_size,
                counted=False,
            ):
                for row in page:
                    twins[row["twin_id"]] = row
            self.progress.advance("twins", 1)
        # The indexer writes "" for a twin the chain holds without a public key (stored by an
        # event before runtime 124, or with `pk: None`); minting checks a twin's key only when
        # there is one (`if let Some(ref pk) = twin.pk`), so "" is written as null (INDEXER.md).
        empty = [twin_id for twin_id, row in twins.items() if row["pk"] == ""]
        for twin_id in empty:
            twins[twin_id]["pk"] = None
        if empty:
            self.notes.append(
                f"{len(empty)} twin(s) have an empty publicKey in the indexer (no public key on chain): "
                f"written as null, which the end-of-period key check skips, as minting does: twins {id_list(empty)}"
            )
        return twins

    # -- event tables: paged by primary-key ranges ---------------------------------------------

    def uptime(self, node_ids: list[int]) -> tuple[dict[int, UptimeColumns], int]:
        """Uptime reports of the window per node in chain order ({node: (timestamps, uptimes,
        block heights, indexes in the block)}), and how many reports in the window belong to
        nodes the snapshot does not have. Every block seen goes into `self.edge_points`."""
        known = set(node_ids)
        low = self.start_ts

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

        where = {**self._event_bounds(), "timestamp_gte": str(low)}
        per_node: dict[int, UptimeColumns] = {
            node_id: (array("q"), array("q"), array("q"), array("q")) for node_id in node_ids
        }
        outside = 0
        see = [points.see for points in self.edge_points]
        for page in self.pager.ranged(
            "uptime", UPTIME_BY_ID, where, parse, page_size=self.options.event_page_size, progress="uptime reports"
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

    def power_events(self, node_ids: list[int]) -> list[list]:
        """Power target and state reports in the window, merged per node in chain order
        (block height, then index in the block); rows [node_id, timestamp, kind, value,
        height, index]."""
        known = set(node_ids)
        merged: list[list] = []
        where = {**self._event_bounds(), "timestamp_gte": str(self.start_ts)}
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
                    if ts < self.start_ts:
                        raise r.fail(f"timestamp {ts} is before the requested period start {self.start_ts}")
                    height, in_block = _position(r)
                    value = r.str(value_field, choices=("Up", "Down"))
                    rows.append([node_id, ts, kind, value, height, in_block])
                return rows

            for page in self.pager.ranged(
                f"power.{kind}", entity, where, parse, page_size=self.options.page_size, progress="power events"
            ):
                for row in page:
                    for points in self.edge_points:
                        points.see(row[4], row[1])
                merged.extend(row for row in page if row[0] in known)
        merged.sort(key=lambda row: (row[0], row[4], row[5]))
        return merged

    def _event_bounds(self) -> dict[str, str]:
        """Uptime and power events: from a margin before the period's first block through
        minting's last post-period block, exactly (by height, not by time)."""
        first, after = self.blocks
        return {"id_gte": f"{max(first - _BLOCK_MARGIN, 0):010d}", "id_lt": f"{after:010d}"}

    def edges(self) -> tuple[dict, list[str]]:
        """The header's `blocks` and the notes on them (see edges.py)."""
        start_points, end_points = self.edge_points
        first = self.blocks[0]
        if first > 0:
            # the search's first block is the one after the last block with a report before
            # START: that block's report is the closest known point below the start edge
            before = BlockSearch(self.pager).first_report_ts_from(first - 1)
            if before is not None and before < self.start_ts:
                start_points.see(first - 1, before)
        block_ts = self._rpc_block_ts if self.rpc is not None else None
        start = resolve_edge("start", start_points, block_ts)
        end = resolve_edge("end", end_points, block_ts)
        if not start.height < end.height:
            raise IndexerDataError(
                "uptimeEvents", "the period's blocks", f"start block {start.height} is not below end block {end.height}"
            )
        notes = [
            note
            for note in (
                ambiguity_note(
                    "start",
                    start,
                    self.start_ts,
                    "the events are the same whichever it is (the blocks between hold none), but the start "
                    "block's timestamp, the wake-up request of nodes asleep at the start, may be late",
                ),
                ambiguity_note(
                    "end",
                    end,
                    self.end_ts,
                    "the period's events are the same whichever it is, but minting's 16,200 post-period "
                    "blocks are counted from it",
                ),
            )
            if note is not None
        ]
        if end.height + POST_PERIOD_BLOCKS >= self.blocks[1]:
            raise IndexerDataError(
                "uptimeEvents",
                "the period's blocks",
                f"end block {end.height} is past the block of the first report after the end, "
                f"from which the read was sized (through block {self.blocks[1] - 1})",
            )
        blocks = {
            "start": {"height": start.height, "timestamp": start.timestamp},
            "end": {"height": end.height, "timestamp": end.timestamp},
        }
        return blocks, notes

    def _rpc_block_ts(self, height: int) -> int:
        assert self.rpc is not None
        cached = self.store.get(f"block_ts.{height:010d}")
        if cached is not None:
            return cached
        ts = self.rpc.block_timestamp_s(height)
        self.store.put(f"block_ts.{height:010d}", ts)
        return ts

    def power_at_start(self, nodes: list[dict]) -> list[dict]:
        """State and target at the period start: the last report before START of each node
        the indexer has a power record for (nodes never power managed are Up/Up)."""
        managed = [node["node_id"] for node in nodes if node["_power"] is not None]
        batches = chunks(managed, self.options.ids_per_query)
        self.progress.start("power at start", len(batches))
        result = []
        before = str(self.start_ts)
        for number, batch in enumerate(batches):
            key = f"power_at_start.{number:04d}"
            rows = self.store.get(key)
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
                data = self.gql.query(
                    "query power_at_start { " + " ".join(fields) + " }", what=f"power at start (batch {number})"
                )
                rows = []
                for node_id in batch:
                    state = self._last_report(data, f"s{node_id}", "powerStateReports", "newPowerState", node_id)
                    target = self._last_report(data, f"t{node_id}", "powerTargetReports", "newPowerTarget", node_id)
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
                self.store.put(key, rows)
            result.extend(rows)
            self.progress.advance("power at start", 1)
        return result

    def _last_report(
        self, data: dict, alias: str, entity: str, value_field: str, node_id: int
    ) -> tuple[int, str] | None:
        items = data.get(alias)
        if not isinstance(items, list):
            raise IndexerQueryError(f"{self.gql.url}: power at start: no list under {alias!r}")
        if not items:
            return None
        r = Record(entity, items[0], f"last report before the period start of node {node_id}")
        if r.int("nodeID") != node_id:
            raise r.fail(f"nodeID {r.int('nodeID')} was not asked for")
        ts = r.int("timestamp", bigint=True)
        if ts >= self.start_ts:
            raise r.fail(f"timestamp {ts} is not before the period start {self.start_ts}")
        return ts, r.str(value_field, choices=("Up", "Down"))

    def contracts(self, node_ids: set[int]) -> list[_Contract]:
        def parse(items: list, offset: int) -> list:
            rows = []
            for index, item in enumerate(items):
                r = Record("nodeContracts", item, where_label(offset, index, item, "contractID"))
                used = r.get("resourcesUsed")
                used_row = None
                if used is not None:
                    # summed into usage seconds: a negative value would hide in the sum
                    used_row = [
                        r.int(f"resourcesUsed.{name}", bigint=True, minimum=0) for name in ("cru", "mru", "sru", "hru")
                    ]
                rows.append(
                    [
                        r.int("contractID", bigint=True),
                        r.int("nodeID"),
                        r.int("numberOfPublicIPs", minimum=0),
                        r.str("state", choices=("Created", "Deleted", "OutOfFunds", "GracePeriod")),
                        block_seconds(r.int("createdAt", bigint=True)),
                        used_row,
                    ]
                )
            return rows

        contracts = []
        scale = self._created_at_scale()
        where = {"createdAt_lte": str(self.end_ts * scale + scale - 1)}
        for page in self.pager.paged(
            "contracts", CONTRACTS, where, parse, page_size=self.options.page_size, progress="contracts"
        ):
            for contract_id, node_id, ips, state, created_ts, used in page:
                if node_id in node_ids:
                    contracts.append(
                        _Contract(
                            contract_id,
                            node_id,
                            ips,
                            state == "Deleted",
                            created_ts,
                            tuple(used) if used is not None else None,
                        )
                    )
        return contracts

    def _created_at_scale(self) -> int:
        """1 when contracts' `createdAt` block times are in seconds, 1000 in milliseconds (the
        filter on it must use the same unit), judged from the newest contract."""
        cached = self.store.get("contracts.unit")
        if cached is not None:
            return cached
        data = self.gql.query(
            "query newest_contract { nodeContracts(orderBy: contractID_DESC, limit: 1) { contractID createdAt } }",
            what="newest contract",
        )
        items = data.get("nodeContracts")
        if not isinstance(items, list):
            raise IndexerQueryError(f"{self.gql.url}: newest contract: expected a list under 'nodeContracts'")
        scale = 1
        if items:
            created = Record("nodeContracts", items[0], "newest contract").int("createdAt", bigint=True)
            scale = 1000 if created > MILLISECONDS_ABOVE else 1
        self.store.put("contracts.unit", scale)
        return scale

    def last_bills(self, deleted: list[int]) -> dict[int, int]:
        """contract id -> its last bill report time in [START, window end], for deleted contracts."""
        batches = chunks(deleted, self.options.ids_per_query)
        self.progress.start("contract bills", len(batches))
        found: dict[int, int] = {}
        for number, batch in enumerate(batches):
            asked = set(batch)

            def parse(items: list, offset: int, asked: set = asked) -> list:
                rows = []
                for index, item in enumerate(items):
                    r = Record("contractBillReports", item, where_label(offset, index, item, "id"))
                    cid = r.int("contractID", bigint=True)
                    ts = r.int("timestamp", bigint=True)
                    r.str("id")
                    if cid not in asked or not self.start_ts <= ts <= self.window_end_ts:
                        raise r.fail(f"contract {cid} at {ts} does not match the query")
                    rows.append([cid, ts])
                return rows

            where = {
                **id_bounds(self.blocks, _BLOCK_MARGIN),
                "contractID_in": [str(cid) for cid in batch],
                "timestamp_gte": str(self.start_ts),
                "timestamp_lte": str(self.window_end_ts),
            }
            for page in self.pager.ranged(
                f"bills.{number:04d}", BILLS_BY_ID, where, parse, page_size=self.options.page_size
            ):
                for cid, ts in page:
                    found[cid] = max(found.get(cid, ts), ts)
            self.progress.advance("contract bills", 1)
        return found

    def nru(self, contract_ids: list[int]) -> dict[int, int]:
        """contract id -> public traffic bytes reported in (START, END]."""
        totals: dict[int, int] = {}
        batches = chunks(contract_ids, self.options.ids_per_query)
        self.progress.start("traffic (NRU)", len(batches))
        for number, batch in enumerate(batches):
            asked = set(batch)

            def parse(items: list, offset: int, asked: set = asked) -> list:
                rows = []
                for index, item in enumerate(items):
                    r = Record("nruConsumptions", item, where_label(offset, index, item, "id"))
                    cid = r.int("contractID", bigint=True)
                    ts = r.int("timestamp", bigint=True)
                    r.str("id")
                    if cid not in asked or not self.start_ts < ts <= self.end_ts:
                        raise r.fail(f"contract {cid} at {ts} does not match the query")
                    rows.append([cid, r.int("nru", bigint=True, nullable=True, minimum=0) or 0])
                return rows

            # a traffic report carries the node's own time: a wider margin of blocks
            where = {
                **id_bounds(self.blocks, _NRU_BLOCK_MARGIN),
                "contractID_in": [str(cid) for cid in batch],
                "timestamp_gt": str(self.start_ts),
                "timestamp_lte": str(self.end_ts),
            }
            for page in self.pager.ranged(f"nru.{number:04d}", NRU, where, parse, page_size=self.options.page_size):
                for cid, nru in page:
                    totals[cid] = totals.get(cid, 0) + nru
            self.progress.advance("traffic (NRU)", 1)
        return totals

    def consumption(self, nodes: list[dict]) -> dict[int, dict]:
        """Per node: usage of its contracts over the period (see INDEXER.md)."""
        contracts = self.contracts({node["node_id"] for node in nodes})
        deleted = [c.contract_id for c in contracts if c.deleted]
        last_bill = self.last_bills(deleted)
        start, end = self.start_ts, self.end_ts
        active: dict[int, int] = {}
        for contract in contracts:
            if contract.deleted and contract.contract_id not in last_bill:
                active[contract.contract_id] = 0  # no bill in the window: gone before the period
                continue
            until = min(last_bill[contract.contract_id], end) if contract.deleted else end
            active[contract.contract_id] = max(0, until - max(contract.created_ts, start))
        billed = [c.contract_id for c in contracts if not c.deleted or c.contract_id in last_bill]
        traffic = self.nru(billed)
        usage: dict[int, dict] = {}
        no_resources = 0
        for contract in contracts:
            row = usage.setdefault(
                contract.node_id,
                dict.fromkeys(("nru", "ip_seconds", "cru_seconds", "mru_seconds", "sru_seconds", "hru_seconds"), 0),
            )
            seconds = active[contract.contract_id]
            row["nru"] += traffic.get(contract.contract_id, 0)
            row["ip_seconds"] += contract.public_ips * seconds
            if contract.used is None:
                no_resources += seconds > 0
                continue
            for name, amount in zip(("cru", "mru", "sru", "hru"), contract.used, strict=True):
                row[f"{name}_seconds"] += amount * seconds
        unbilled = len(deleted) - len(last_bill)
        self.notes.append(
            "contract usage: each node contract's current resourcesUsed and numberOfPublicIPs times the "
            "seconds it was active in the period (from createdAt, until its last bill report when "
            "deleted); the indexer keeps no history of resource changes; traffic is the sum of "
            "NruConsumption reports in (start, end]"
        )
        if unbilled:
            self.notes.append(
                f"{unbilled} deleted contract(s) have no bill report in the period's window: "
                f"counted as ended before the period"
            )
        if no_resources:
            self.notes.append(f"{no_resources} active contract(s) have no resourcesUsed: counted as using none")
        return usage

    # -- checks, notes and the file ------------------------------------------------------------

    def references(self, nodes: list[dict], farms: list[dict], twins: dict[int, dict]) -> None:
        farm_ids = {farm["farm_id"] for farm in farms}
        without_farm = [n["node_id"] for n in nodes if n["farm_id"] not in farm_ids]
        without_twin = [n["node_id"] for n in nodes if n["twin_id"] not in twins]
        farms_without_twin = [f["farm_id"] for f in farms if f["twin_id"] not in twins]
        if without_farm:
            self.notes.append(
                f"{len(without_farm)} node(s) reference a farm the indexer does not have, "
                f"so they get no reward (invalid_record): nodes {id_list(without_farm)}"
            )
        if without_twin:
            self.notes.append(
                f"{len(without_twin)} node(s) reference a twin the indexer does not have, "
                f"so they get no reward (invalid_record): nodes {id_list(without_twin)}"
            )
        if farms_without_twin:
            self.notes.append(
                f"{len(farms_without_twin)} farm(s) reference a twin the indexer does not "
                f"have: farms {id_list(farms_without_twin)}"
            )

    def totals(self) -> dict[str, int]:
        data = self.gql.query(TOTALS_QUERY, what="totals")
        totals = {}
        for key, connection in COMPARED.items():
            value = data.get(connection)
            count = value.get("totalCount") if isinstance(value, dict) else None
            if type(count) is not int:
                raise IndexerQueryError(f"{self.gql.url}: totals: no {connection}.totalCount in the answer")
            totals[key] = count
        return totals

    def run(self) -> BuildSummary:
        height, processed_ts = self.check_indexer()
        fingerprint = {
            "layout": _PARTS_LAYOUT,
            "period_offset": self.period.offset,
            "network": self.network,
            "graphql_url": self.gql.url,
            "page_size": self.options.page_size,
            "event_page_size": self.options.event_page_size,
            "nodes_per_chunk": self.options.nodes_per_chunk,
            "ids_per_query": self.options.ids_per_query,
            # the endpoint may carry credentials: the parts folder keeps only its digest
            "tfchain_rpc_url": hashlib.sha256(self.options.rpc_url.encode()).hexdigest()
            if self.options.rpc_url
            else None,
        }
        self.parts = Parts(self.out.with_name(self.out.name + ".parts"), fingerprint)
        built_at = self.now().astimezone(UTC)

        policies = self.policies()
        nodes = self.nodes()
        # a value neither the indexer nor the policy file has comes from TFChain's state at the
        # period-end block, known once the events are read; without an endpoint it stops here
        for_the_chain = policies_for_the_chain(policies, nodes, supplied=self.options.policy_file)
        if not (for_the_chain and self.options.rpc_url):
            self.notes.extend(
                resolve_policies(policies, nodes, supplied=self.options.policy_file, indexer_url=self.gql.url)
            )
        farms = self.farms()
        node_ids = [node["node_id"] for node in nodes]
        twin_ids = sorted({n["twin_id"] for n in nodes} | {f["twin_id"] for f in farms})
        twins = self.twins(twin_ids)
        self.blocks = BlockSearch(self.pager).block_range(height, self.start_ts, self.end_ts)
        self.check_indexer_height(height, processed_ts)
        uptime, outside = self.uptime(node_ids)
        uptime_count = sum(len(columns[0]) for columns in uptime.values())
        power = self.power_events(node_ids)
        power_count = len(power)
        power_at_start = self.power_at_start(nodes)
        usage = self.consumption(nodes)
        blocks, edge_notes = self.edges()
        self.notes.extend(edge_notes)
        from_chain: ChainPolicyValues | None = None
        if for_the_chain and self.options.rpc_url:
            from_chain = read_minimal_uptimes(self.options.rpc_url, for_the_chain, block_height=blocks["end"]["height"])
            self.notes.extend(
                resolve_policies(
                    policies,
                    nodes,
                    supplied=self.options.policy_file,
                    indexer_url=self.gql.url,
                    from_chain=from_chain,
                )
            )

        self.references(nodes, farms, twins)
        if outside > 0:
            self.notes.append(
                f"{outside} uptime report(s) in the window belong to nodes the indexer no longer "
                f"has (deleted since) or that were created after the period: left out"
            )
        totals = self.totals()
        if totals["nodes"] > len(nodes):
            self.notes.append(f"{totals['nodes'] - len(nodes)} node(s) created after the period end are left out")
        if self.gridproxy_url:
            stats = fetch_stats(self.http, self.gridproxy_url)
            self.notes.extend(
                compare_counts(
                    totals,
                    stats,
                    tolerance_ratio=self.options.gridproxy_tolerance_ratio,
                    gridproxy_url=self.gridproxy_url,
                )
            )
        self.notes.insert(
            0,
            (
                f"farm payout addresses (Farm.stellarAddress) and node records (farm, twin, resources, "
                f"certification, farming policy, connection price, virtualized) are the indexer's current "
                f"state at height {height}, read from {built_at:%Y-%m-%d %H:%M} UTC; the indexer keeps no "
                f"history of them, so a change made after the period end ({iso(self.end_ts)}) shows here"
            ),
        )

        zero = dict.fromkeys(("nru", "ip_seconds", "cru_seconds", "mru_seconds", "sru_seconds", "hru_seconds"), 0)
        node_rows = []
        for node in nodes:
            node.pop("_power")
            node_rows.append({**node, "consumption": usage.get(node["node_id"], zero)})
        header = {
            "format": FORMAT_2_TAG,
            "network": self.network,
            "period_offset": self.period.offset,
            "blocks": blocks,
            "notes": self.notes,
            "source": {
                "builder": "tfchain-graphql",
                "code_version": CODE_VERSION,
                "graphql_url": self.gql.url,
                "gridproxy_url": self.gridproxy_url,
                "tfchain_rpc_url": url_without_credentials(self.rpc.url) if self.rpc is not None else None,
                "indexer_height": height,
                "indexer_processed_ts": processed_ts,
                "window": {"start_ts": self.start_ts, "end_ts": self.end_ts, "window_end_ts": self.window_end_ts},
                "built_at": built_at.isoformat(),
                "policy_file": self.options.policy_file.source() if self.options.policy_file else None,
                "policy_rpc": from_chain.source() if from_chain is not None else None,
            },
            "farming_policies": policies,
            "farms": farms,
            "twins": [twins[twin_id] for twin_id in sorted(twins)],
        }
        written = write_format_2(self.out, header, node_rows, uptime, power, power_at_start)
        reused = self.parts.reused
        self.parts.remove()
        return BuildSummary(
            path=self.out,
            period=self.period,
            nodes=len(nodes),
            farms=len(farms),
            twins=len(twins),
            uptime_events=uptime_count,
            power_events=power_count,
            notes=list(self.notes),
            indexer_height=height,
            requests=self.http.requests,
            slowest_request_s=self.http.slowest_s,
            parts_reused=reused,
            bytes_written=written,
        )


def build_snapshot(
    out: str | Path,
    *,
    period: Period,
    network: str,
    graphql_url: str,
    gridproxy_url: str | None,
    options: BuildOptions | None = None,
    progress: Progress | None = None,
    now: Callable[[], datetime] | None = None,
) -> BuildSummary:
    """Build the period's snapshot from the indexer into `out` (`.gz` to gzip it).

    Raises IndexerBehind (a SnapshotUnavailable) when the indexer has not processed the
    post-period window yet, and other SourceErrors for unreachable servers, refused queries,
    malformed records and failed cross-checks. `out` is written only when everything passed.
    """
    builder = Builder(
        Path(out),
        period=period,
        network=network,
        graphql_url=graphql_url,
        gridproxy_url=gridproxy_url,
        options=options or BuildOptions(),
        progress=progress or NoProgress(),
        now=now or (lambda: datetime.now(UTC)),
    )
    try:
        return builder.run()
    finally:
        builder.http.close()
