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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from payouts import CODE_VERSION
from payouts.periods import Period
from payouts.snapshot.schema import FORMAT_2_TAG
from payouts.sources.graphql import GraphQLClient, JsonHttp
from payouts.sources.gridproxy import compare_counts, fetch_stats
from payouts.sources.indexer import consumption, events, grid_entities, status
from payouts.sources.indexer.block_range import BlockSearch
from payouts.sources.indexer.context import BuildContext
from payouts.sources.indexer.edges import EdgePoints
from payouts.sources.indexer.grid_entities import DEFAULT_CONNECTION_PRICE_MUSD
from payouts.sources.indexer.options import BuildOptions, BuildSummary, NoProgress, Progress
from payouts.sources.indexer.paging import Pager
from payouts.sources.indexer.parts import Parts
from payouts.sources.indexer.period_edges import edges
from payouts.sources.indexer.policy_values import policies_for_the_chain, resolve_policies
from payouts.sources.indexer.text import iso
from payouts.sources.indexer.writer import write_format_2
from payouts.sources.tfchain_rpc import TfchainRpc
from payouts.sources.tfchain_state import ChainPolicyValues, read_minimal_uptimes, url_without_credentials

__all__ = ["DEFAULT_CONNECTION_PRICE_MUSD", "Builder", "build_snapshot"]

#: Bumped whenever the layout of a part file changes, so old parts are never reused.
_PARTS_LAYOUT = 5


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
        self.ctx = BuildContext(self.gql, self.pager, options, progress, period, self.notes, lambda: self.store)

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def store(self) -> Parts:
        """The parts folder of this build (opened once the indexer passed its status check)."""
        if self.parts is None:
            raise RuntimeError("the parts folder is opened by run()")
        return self.parts

    def check_indexer(self) -> tuple[int, int]:
        """(height, newest event time); IndexerBehind unless past the post-period window."""
        return status.check_indexer(self.ctx, self.now)

    # -- the steps, in order, and the file -------------------------------------------------------

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

        policies = grid_entities.policies(self.ctx)
        nodes = grid_entities.nodes(self.ctx)
        # a value neither the indexer nor the policy file has comes from TFChain's state at the
        # period-end block, known once the events are read; without an endpoint it stops here
        for_the_chain = policies_for_the_chain(policies, nodes, supplied=self.options.policy_file)
        if not (for_the_chain and self.options.rpc_url):
            self.notes.extend(
                resolve_policies(policies, nodes, supplied=self.options.policy_file, indexer_url=self.gql.url)
            )
        farms = grid_entities.farms(self.ctx)
        node_ids = [node["node_id"] for node in nodes]
        twin_ids = sorted({n["twin_id"] for n in nodes} | {f["twin_id"] for f in farms})
        twins = grid_entities.twins(self.ctx, twin_ids)
        self.blocks = BlockSearch(self.pager).block_range(height, self.start_ts, self.end_ts)
        status.check_indexer_height(self.ctx, self.blocks, height, processed_ts)
        uptime, outside = events.uptime(self.ctx, self.blocks, self.edge_points, node_ids)
        uptime_count = sum(len(columns[0]) for columns in uptime.values())
        power = events.power_events(self.ctx, self.blocks, self.edge_points, node_ids)
        power_count = len(power)
        power_at_start = events.power_at_start(self.ctx, nodes)
        usage = consumption.consumption(self.ctx, self.blocks, nodes)
        blocks, edge_notes = edges(self.ctx, self.blocks, self.edge_points, self.rpc)
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

        grid_entities.references(self.ctx, nodes, farms, twins)
        if outside > 0:
            self.notes.append(
                f"{outside} uptime report(s) in the window belong to nodes the indexer no longer "
                f"has (deleted since) or that were created after the period: left out"
            )
        totals = status.totals(self.ctx)
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
