"""The period's edge blocks for `tfgrid-snapshot/2`: the first block stamped after START and the
first block stamped after END (minting's `height_at_timestamp`).

The indexer has no table of blocks, only events with their block's height (in the id) and time.
Around an edge E, the highest block known to be stamped at or before E (`below`) and the lowest
known to be stamped after it (`above`) come from those events. When they are consecutive the
edge is `above`, exactly. When blocks without events lie between them, their stamps decide:
read from a TFChain node when one is configured (a binary search, block times never
decreasing), otherwise `above` is taken and the header's notes name the blocks it could be.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from payouts.sources.errors import IndexerDataError


@dataclass(frozen=True)
class Edge:
    height: int
    timestamp: int
    #: blocks the edge could also be (empty when exact): `lowest..height - 1`
    unsure_from: int | None = None


class EdgePoints:
    """Per edge, the closest known block at or before it and the closest after it."""

    def __init__(self, edge_ts: int) -> None:
        self.edge_ts = edge_ts
        self.below: tuple[int, int] | None = None  # (height, timestamp)
        self.above: tuple[int, int] | None = None

    def see(self, height: int, ts: int) -> None:
        if ts <= self.edge_ts:
            if self.below is None or height > self.below[0]:
                self.below = (height, ts)
        elif self.above is None or height < self.above[0]:
            self.above = (height, ts)

    def see_all(self, points: Iterable[tuple[int, int]]) -> None:
        for height, ts in points:
            self.see(height, ts)


def resolve_edge(name: str, points: EdgePoints, block_ts: Callable[[int], int] | None) -> Edge:
    """The first block stamped after the edge. `block_ts(height)` reads a block's stamp from a
    node (None: no node, the lowest known block after the edge is taken)."""
    if points.above is None:
        raise IndexerDataError(
            "uptimeEvents",
            f"the period's {name}",
            f"no event after {points.edge_ts}: the first block after it is unknown",
        )
    above_h, above_ts = points.above
    if points.below is not None and points.below[0] >= above_h:
        below_h, below_ts = points.below
        raise IndexerDataError(
            "uptimeEvents",
            f"the period's {name}",
            f"block {below_h} is stamped {below_ts}, at or before {points.edge_ts}, but block {above_h} "
            f"below it is stamped {above_ts}, after it: block times must not decrease",
        )
    lowest = points.below[0] + 1 if points.below is not None else 0
    if lowest == above_h:
        return Edge(above_h, above_ts)
    if block_ts is None:
        return Edge(above_h, above_ts, unsure_from=lowest)
    low, high, high_ts = lowest, above_h, above_ts
    while low < high:
        middle = (low + high) // 2
        ts = block_ts(middle)
        if ts > points.edge_ts:
            high, high_ts = middle, ts
        else:
            low = middle + 1
    return Edge(high, high_ts)


def ambiguity_note(name: str, edge: Edge, edge_ts: int, consequence: str) -> str | None:
    if edge.unsure_from is None:
        return None
    return (
        f"the first block after the period's {name} ({edge_ts}) is one of blocks {edge.unsure_from}..{edge.height}: "
        f"blocks {edge.unsure_from}..{edge.height - 1} hold no event the indexer has, and no TFChain RPC endpoint "
        f"(PAYOUTS_TFCHAIN_RPC_URL) was configured to read their timestamps; block {edge.height} "
        f"(stamped {edge.timestamp}) is written, {consequence}"
    )
