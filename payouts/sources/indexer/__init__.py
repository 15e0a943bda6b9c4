"""Build a period's snapshot from TFChain's GraphQL indexer (`payouts/sources/INDEXER.md`).

One job per module: `queries` (the GraphQL documents), `records` (type-checked fields),
`paging` (pages, counts, primary-key ranges), `parts` (the resumable parts folder),
`block_range` (the period's blocks), `policy_values` (minimal uptimes), `builder` (the steps
and the snapshot's fields), `writer` (the atomic file write), `options`, `text`.
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
