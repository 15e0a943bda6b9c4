"""The indexer's status and totals: is it far enough along for the period, and how many of each
entity it holds (compared with the snapshot's counts and with grid proxy)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from payouts.snapshot.format2 import POST_PERIOD_BLOCKS
from payouts.sources.errors import IndexerBehind, IndexerQueryError
from payouts.sources.gridproxy import COMPARED
from payouts.sources.indexer.context import BuildContext
from payouts.sources.indexer.queries import STATUS_QUERY, TOTALS_QUERY
from payouts.sources.indexer.records import Record
from payouts.sources.indexer.text import duration, iso

#: TFChain's block time, for the estimate of when a lagging indexer will have the blocks.
_TARGET_BLOCK_S = 6


def check_indexer(ctx: BuildContext, now: Callable[[], datetime]) -> tuple[int, int]:
    """(height, newest event time); IndexerBehind unless past the post-period window."""
    data = ctx.gql.query(STATUS_QUERY, what="indexer status")
    status = data.get("squidStatus")
    height = status.get("height") if isinstance(status, dict) else None
    if type(height) is not int:
        raise IndexerQueryError(f"{ctx.gql.url}: indexer status: no squidStatus.height in the answer")
    newest = data.get("uptimeEvents")
    processed_ts = None
    if isinstance(newest, list) and newest:
        processed_ts = Record("uptimeEvents", newest[0], "newest event").int("timestamp", bigint=True)
    needed = ctx.window_end_ts
    if processed_ts is None or processed_ts < needed:
        now_ts = int(now().timestamp())
        seen = (
            "has no uptime event yet"
            if processed_ts is None
            else f"has processed the chain up to {iso(processed_ts)}, {duration(needed - processed_ts)} short of it"
        )
        future = f"; that moment is still {duration(needed - now_ts)} away" if now_ts < needed else ""
        raise IndexerBehind(
            f"the indexer at {ctx.gql.url} (height {height}) {seen}: period {ctx.period} needs "
            f"uptime reports up to {iso(needed)} (period end + 27 h){future}. Try again later.",
            height=height,
            processed_ts=processed_ts,
            needed_ts=needed,
        )
    return height, processed_ts


def check_indexer_height(ctx: BuildContext, blocks: tuple[int, int], height: int, processed_ts: int) -> None:
    """IndexerBehind unless the indexer has processed minting's post-period blocks: counted
    in blocks, they run past END + 27 h when blocks were missed after the end."""
    needed = blocks[1] - 1
    if height >= needed:
        return
    short = needed - height
    raise IndexerBehind(
        f"the indexer at {ctx.gql.url} has processed the chain up to block {height} "
        f"({iso(processed_ts)}): period {ctx.period} needs the blocks through {needed} (the block "
        f"of the first report after the period end + {POST_PERIOD_BLOCKS:,} post-period blocks), "
        f"{short:,} block(s) short of it (blocks were missed after the end, so the window runs "
        f"past the period end + 27 h). Try again later.",
        height=height,
        processed_ts=processed_ts,
        needed_ts=processed_ts + _TARGET_BLOCK_S * short,
    )


def totals(ctx: BuildContext) -> dict[str, int]:
    data = ctx.gql.query(TOTALS_QUERY, what="totals")
    totals = {}
    for key, connection in COMPARED.items():
        value = data.get(connection)
        count = value.get("totalCount") if isinstance(value, dict) else None
        if type(count) is not int:
            raise IndexerQueryError(f"{ctx.gql.url}: totals: no {connection}.totalCount in the answer")
        totals[key] = count
    return totals
