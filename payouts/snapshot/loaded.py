"""What a loaded snapshot offers the calculation, whatever its format: header and node records,
events node by node, and what reading the events found."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from payouts.calculation.uptime import Window
from payouts.snapshot.schema import Event, SnapshotHeader


@dataclass
class EventStats:
    """What reading the event arrays found; reset on every pass over the events."""

    uptime_events: int = 0
    power_events: int = 0
    duplicates_dropped: int = 0
    unknown_node_events: int = 0
    unknown_node_ids: set[int] = field(default_factory=set)
    #: node id -> why one of its events was dropped (the node's record is then invalid).
    invalid_event_nodes: dict[int, str] = field(default_factory=dict)
    #: nodes with an uptime of 2^62 or more: measured with minting's wrapping i64 arithmetic
    wide_nodes: set[int] = field(default_factory=set)


class LoadedSnapshot(ABC):
    """A validated snapshot (`/1` or `/2`): its header and node records in memory, its events
    read node by node, as the calculation asks for them."""

    path: Path
    header: SnapshotHeader
    stats: EventStats
    size_bytes: int
    #: the implied wake-up request of a node asleep at the start (None: START, as in `/1`)
    wake_at_start_ts: int | None

    @property
    @abstractmethod
    def sha256(self) -> str:
        """SHA-256 (hex) of the snapshot's bytes after gzip decompression."""

    @abstractmethod
    def iter_node_events(self, *, buffered: bool = False) -> Iterator[tuple[int, list[Event]]]:
        """(node_id, events) per node that has events, in processing order."""

    @abstractmethod
    def iter_node_windows(self, *, buffered: bool = False) -> Iterator[tuple[int, list[Event], Window | None]]:
        """(node_id, events, window): the window says which events are in period and post period
        (None: by timestamp)."""
