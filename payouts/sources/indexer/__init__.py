"""Build a period's snapshot from TFChain's GraphQL indexer (`payouts/sources/INDEXER.md`).

One job per module: `queries` (the GraphQL documents), `records` (type-checked fields),
`paging` (pages, counts, primary-key ranges), `parts` (the resumable parts folder),
`block_range` (the period's blocks), `policy_values` (minimal uptimes), `context` (what every
step reads through), `status` (the indexer's status and totals), `grid_entities` (policies, nodes,
farms, twins), `events` (uptime and power reports), `consumption` (contract usage),
`period_edges` (the header's blocks), `builder` (the steps in order and the snapshot's header),
`writer` (the atomic file write), `options`, `text`.
"""

from payouts.sources.indexer.builder import DEFAULT_CONNECTION_PRICE_MUSD, Builder, build_snapshot
from payouts.sources.indexer.options import (
    DEFAULT_ENDPOINTS,
    BuildOptions,
    BuildSummary,
    NoProgress,
    Progress,
    default_endpoints,
)

__all__ = [
    "DEFAULT_CONNECTION_PRICE_MUSD",
    "DEFAULT_ENDPOINTS",
    "BuildOptions",
    "BuildSummary",
    "Builder",
    "NoProgress",
    "Progress",
    "build_snapshot",
    "default_endpoints",
]
