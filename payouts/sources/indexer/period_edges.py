"""The header's `blocks`: the period's start and end blocks from what the events tell of the
blocks around the edges (edges.py), asking TFChain for a block's time where they cannot tell."""

from __future__ import annotations

from payouts.snapshot.format2 import POST_PERIOD_BLOCKS
from payouts.sources.errors import IndexerDataError
from payouts.sources.indexer.block_range import BlockSearch
from payouts.sources.indexer.context import BuildContext
from payouts.sources.indexer.edges import EdgePoints, ambiguity_note, resolve_edge
from payouts.sources.tfchain_rpc import TfchainRpc


def edges(
    ctx: BuildContext, blocks: tuple[int, int], edge_points: tuple[EdgePoints, EdgePoints], rpc: TfchainRpc | None
) -> tuple[dict, list[str]]:
    """The header's `blocks` and the notes on them (see edges.py)."""
    start_points, end_points = edge_points
    first = blocks[0]
    if first > 0:
        # the search's first block is the one after the last block with a report before
        # START: that block's report is the closest known point below the start edge
        before = BlockSearch(ctx.pager).first_report_ts_from(first - 1)
        if before is not None and before < ctx.start_ts:
            start_points.see(first - 1, before)
    block_ts = (lambda height: _rpc_block_ts(ctx, rpc, height)) if rpc is not None else None
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
                ctx.start_ts,
                "the events are the same whichever it is (the blocks between hold none), but the start "
                "block's timestamp, the wake-up request of nodes asleep at the start, may be late",
            ),
            ambiguity_note(
                "end",
                end,
                ctx.end_ts,
                "the period's events are the same whichever it is, but minting's 16,200 post-period "
                "blocks are counted from it",
            ),
        )
        if note is not None
    ]
    if end.height + POST_PERIOD_BLOCKS >= blocks[1]:
        raise IndexerDataError(
            "uptimeEvents",
            "the period's blocks",
            f"end block {end.height} is past the block of the first report after the end, "
            f"from which the read was sized (through block {blocks[1] - 1})",
        )
    header_blocks = {
        "start": {"height": start.height, "timestamp": start.timestamp},
        "end": {"height": end.height, "timestamp": end.timestamp},
    }
    return header_blocks, notes


def _rpc_block_ts(ctx: BuildContext, rpc: TfchainRpc, height: int) -> int:
    cached = ctx.store.get(f"block_ts.{height:010d}")
    if cached is not None:
        return cached
    ts = rpc.block_timestamp_s(height)
    ctx.store.put(f"block_ts.{height:010d}", ts)
    return ts
