"""The build's settings, its summary and where it reports progress."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from payouts.periods import Period
from payouts.sources.graphql import RetryPolicy
from payouts.sources.policies import PolicyFile

#: network -> (GraphQL indexer, grid proxy)
DEFAULT_ENDPOINTS = {
    "main": ("https://graphql.grid.tf/graphql", "https://gridproxy.grid.tf"),
    "test": ("https://graphql.test.grid.tf/graphql", "https://gridproxy.test.grid.tf"),
    "dev": ("https://graphql.dev.grid.tf/graphql", "https://gridproxy.dev.grid.tf"),
}


class Progress(Protocol):
    """Where the builder reports what it downloads (a rich bar in the CLI, nothing in workers)."""

    def start(self, entity: str, total: int | None) -> None: ...
    def advance(self, entity: str, amount: int) -> None: ...


class NoProgress:
    def start(self, entity: str, total: int | None) -> None:
        pass

    def advance(self, entity: str, amount: int) -> None:
        pass


@dataclass(frozen=True)
class BuildOptions:
    #: Records per page for ordinary entities, and for events (uptime reports are millions).
    page_size: int = 1000
    event_page_size: int = 5000
    #: Nodes whose events are fetched together (one part folder step, one count check).
    nodes_per_chunk: int = 100
    #: Ids per `_in` filter, and aliased "last record before" lookups per request.
    ids_per_query: int = 100
    timeout_s: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Relative count difference with the grid proxy above which the build stops.
    gridproxy_tolerance_ratio: float = 0.01
    #: Minimal uptimes of farming policies the indexer has none for (`--policies FILE`).
    policy_file: PolicyFile | None = None
    #: A TFChain node's HTTP JSON-RPC: timestamps of blocks without events at the period's edges.
    rpc_url: str | None = None


@dataclass
class BuildSummary:
    path: Path
    period: Period
    nodes: int
    farms: int
    twins: int
    uptime_events: int
    power_events: int
    notes: list[str]
    indexer_height: int
    requests: int
    slowest_request_s: float
    parts_reused: int
    bytes_written: int


def default_endpoints(network: str) -> tuple[str, str]:
    """(GraphQL URL, grid proxy URL) of a network."""
    return DEFAULT_ENDPOINTS[network]
