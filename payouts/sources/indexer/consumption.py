"""Contract usage per node from the indexer: node contracts, the last bill of deleted ones, public
traffic reports, and their sum over the period (INDEXER.md)."""

from __future__ import annotations

from dataclasses import dataclass

from payouts.sources.errors import IndexerQueryError
from payouts.sources.indexer.block_range import BLOCK_MARGIN, NRU_BLOCK_MARGIN, id_bounds
from payouts.sources.indexer.context import BuildContext
from payouts.sources.indexer.paging import where_label
from payouts.sources.indexer.queries import BILLS_BY_ID, CONTRACTS, NRU
from payouts.sources.indexer.records import MILLISECONDS_ABOVE, Record, block_seconds
from payouts.sources.indexer.text import chunks


@dataclass
class _Contract:
    contract_id: int
    node_id: int
    public_ips: int
    deleted: bool
    created_ts: int
    used: tuple[int, int, int, int] | None  # cru, mru, sru, hru


def node_contracts(ctx: BuildContext, node_ids: set[int]) -> list[_Contract]:
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
    scale = created_at_scale(ctx)
    where = {"createdAt_lte": str(ctx.end_ts * scale + scale - 1)}
    for page in ctx.pager.paged(
        "contracts", CONTRACTS, where, parse, page_size=ctx.options.page_size, progress="contracts"
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


def created_at_scale(ctx: BuildContext) -> int:
    """1 when contracts' `createdAt` block times are in seconds, 1000 in milliseconds (the
    filter on it must use the same unit), judged from the newest contract."""
    cached = ctx.store.get("contracts.unit")
    if cached is not None:
        return cached
    data = ctx.gql.query(
        "query newest_contract { nodeContracts(orderBy: contractID_DESC, limit: 1) { contractID createdAt } }",
        what="newest contract",
    )
    items = data.get("nodeContracts")
    if not isinstance(items, list):
        raise IndexerQueryError(f"{ctx.gql.url}: newest contract: expected a list under 'nodeContracts'")
    scale = 1
    if items:
        created = Record("nodeContracts", items[0], "newest contract").int("createdAt", bigint=True)
        scale = 1000 if created > MILLISECONDS_ABOVE else 1
    ctx.store.put("contracts.unit", scale)
    return scale


def last_bills(ctx: BuildContext, blocks: tuple[int, int], deleted: list[int]) -> dict[int, int]:
    """contract id -> its last bill report time in [START, window end], for deleted contracts."""
    batches = chunks(deleted, ctx.options.ids_per_query)
    ctx.progress.start("contract bills", len(batches))
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
                if cid not in asked or not ctx.start_ts <= ts <= ctx.window_end_ts:
                    raise r.fail(f"contract {cid} at {ts} does not match the query")
                rows.append([cid, ts])
            return rows

        where = {
            **id_bounds(blocks, BLOCK_MARGIN),
            "contractID_in": [str(cid) for cid in batch],
            "timestamp_gte": str(ctx.start_ts),
            "timestamp_lte": str(ctx.window_end_ts),
        }
        for page in ctx.pager.ranged(f"bills.{number:04d}", BILLS_BY_ID, where, parse, page_size=ctx.options.page_size):
            for cid, ts in page:
                found[cid] = max(found.get(cid, ts), ts)
        ctx.progress.advance("contract bills", 1)
    return found


def nru(ctx: BuildContext, blocks: tuple[int, int], contract_ids: list[int]) -> dict[int, int]:
    """contract id -> public traffic bytes reported in (START, END]."""
    totals: dict[int, int] = {}
    batches = chunks(contract_ids, ctx.options.ids_per_query)
    ctx.progress.start("traffic (NRU)", len(batches))
    for number, batch in enumerate(batches):
        asked = set(batch)

        def parse(items: list, offset: int, asked: set = asked) -> list:
            rows = []
            for index, item in enumerate(items):
                r = Record("nruConsumptions", item, where_label(offset, index, item, "id"))
                cid = r.int("contractID", bigint=True)
                ts = r.int("timestamp", bigint=True)
                r.str("id")
                if cid not in asked or not ctx.start_ts < ts <= ctx.end_ts:
                    raise r.fail(f"contract {cid} at {ts} does not match the query")
                rows.append([cid, r.int("nru", bigint=True, nullable=True, minimum=0) or 0])
            return rows

        # a traffic report carries the node's own time: a wider margin of blocks
        where = {
            **id_bounds(blocks, NRU_BLOCK_MARGIN),
            "contractID_in": [str(cid) for cid in batch],
            "timestamp_gt": str(ctx.start_ts),
            "timestamp_lte": str(ctx.end_ts),
        }
        for page in ctx.pager.ranged(f"nru.{number:04d}", NRU, where, parse, page_size=ctx.options.page_size):
            for cid, nru in page:
                totals[cid] = totals.get(cid, 0) + nru
        ctx.progress.advance("traffic (NRU)", 1)
    return totals


def consumption(ctx: BuildContext, blocks: tuple[int, int], nodes: list[dict]) -> dict[int, dict]:
    """Per node: usage of its contracts over the period (see INDEXER.md)."""
    contracts = node_contracts(ctx, {node["node_id"] for node in nodes})
    deleted = [c.contract_id for c in contracts if c.deleted]
    last_bill = last_bills(ctx, blocks, deleted)
    start, end = ctx.start_ts, ctx.end_ts
    active: dict[int, int] = {}
    for contract in contracts:
        if contract.deleted and contract.contract_id not in last_bill:
            active[contract.contract_id] = 0  # no bill in the window: gone before the period
            continue
        until = min(last_bill[contract.contract_id], end) if contract.deleted else end
        active[contract.contract_id] = max(0, until - max(contract.created_ts, start))
    billed = [c.contract_id for c in contracts if not c.deleted or c.contract_id in last_bill]
    traffic = nru(ctx, blocks, billed)
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
    ctx.notes.append(
        "contract usage: each node contract's current resourcesUsed and numberOfPublicIPs times the "
        "seconds it was active in the period (from createdAt, until its last bill report when "
        "deleted); the indexer keeps no history of resource changes; traffic is the sum of "
        "NruConsumption reports in (start, end]"
    )
    if unbilled:
        ctx.notes.append(
            f"{unbilled} deleted contract(s) have no bill report in the period's window: "
            f"counted as ended before the period"
        )
    if no_resources:
        ctx.notes.append(f"{no_resources} active contract(s) have no resourcesUsed: counted as using none")
    return usage
