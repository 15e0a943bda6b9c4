"""The period's blocks, found by a binary search over the uptime table's primary key.

Event ids begin with the zero-padded block height, so `id_gte: "<height>"` finds the first
report at or after a block with one index lookup; block times never decrease, so a binary
search finds the first block of the period's events and the first block with a report after
its end. Minting reads the 16,200 blocks after the end block (SPEC 3 and 10), counted in blocks,
not in time: when blocks were missed after END they run past END + 27 h, so the read ends at
a block height, not at a time.
"""

from __future__ import annotations

from collections.abc import Callable

from payouts.snapshot.format2 import POST_PERIOD_BLOCKS
from payouts.sources.errors import IndexerDataError, IndexerQueryError
from payouts.sources.event_ids import event_position
from payouts.sources.indexer.paging import Pager
from payouts.sources.indexer.queries import FIRST_FROM_QUERY
from payouts.sources.indexer.records import Record


class BlockSearch:
    def __init__(self, pager: Pager) -> None:
        self.pager = pager

    def first_report_from(self, height: int) -> tuple[int, int] | None:
        """(block height, time) of the first uptime report at block `height` or later (None:
        there is none): one primary-key index lookup, kept as a part like every answer."""
        store = self.pager.store
        cached = store.get(f"first_from.{height:010d}")
        if cached is not None:
            return None if cached["ts"] is None else (cached["height"], cached["ts"])
        found = self._ask_first_report_from(height)
        store.put(
            f"first_from.{height:010d}", {"height": found[0] if found else None, "ts": found[1] if found else None}
        )
        return found

    def first_report_ts_from(self, height: int) -> int | None:
        found = self.first_report_from(height)
        return None if found is None else found[1]

    def _ask_first_report_from(self, height: int) -> tuple[int, int] | None:
        gql = self.pager.gql
        data = gql.query(
            FIRST_FROM_QUERY, {"where": {"id_gte": f"{height:010d}"}}, what=f"first uptime report from block {height}"
        )
        items = data.get("uptimeEvents")
        if not isinstance(items, list):
            raise IndexerQueryError(f"{gql.url}: first uptime report: expected a list under 'uptimeEvents'")
        if not items:
            return None
        r = Record("uptimeEvents", items[0], f"first report from block {height}")
        found = event_position(r.str("id"))
        if found is None or found[0] < height:
            raise r.fail(f"id {r.get('id')!r} is not an event id at block {height} or later")
        return found[0], r.int("timestamp", bigint=True)

    def first_height(self, reached: Callable[[int], bool], height: int) -> int:
        """The lowest block height whose first uptime report at or after it is `reached` (or
        that has none after it): a binary search over the id index, block times being monotonic."""
        low, high = 0, height + 1
        while low < high:
            middle = (low + high) // 2
            ts = self.first_report_ts_from(middle)
            if ts is None or reached(ts):
                high = middle
            else:
                low = middle + 1
        return low

    def block_range(self, height: int, start_ts: int, end_ts: int) -> tuple[int, int]:
        """(first block that can hold an event at or after START, first block past minting's
        post-period blocks): every block below the first holds only earlier events; the end
        block (the first stamped after END) is at most the block of the first report after
        END, so reading through that block + 16,200 holds every block minting reads."""
        first = self.first_height(lambda ts: ts >= start_ts, height)  # each probe is a part
        after_end = self.first_height(lambda ts: ts > end_ts, height)
        found = self.first_report_from(after_end)
        if found is None:
            raise IndexerDataError(
                "uptimeEvents", "the period's end", f"no uptime report after {end_ts}: the end block is unknown"
            )
        return first, found[0] + POST_PERIOD_BLOCKS + 1


#: Blocks of margin around the period's blocks when an event table is paged by id: an hour for
#: tables stamped with their block's time, three days for traffic reports (the node's own time).
BLOCK_MARGIN = 600
NRU_BLOCK_MARGIN = 3 * 14_400


def id_bounds(blocks: tuple[int, int], margin_blocks: int) -> dict[str, str]:
    """`id_gte`/`id_lt` filters over the blocks (first, first after), with a margin each side."""
    first, after = blocks
    return {"id_gte": f"{max(first - margin_blocks, 0):010d}", "id_lt": f"{after + margin_blocks:010d}"}
