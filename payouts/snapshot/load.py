"""Load a snapshot file, whichever its format: `tfgrid-snapshot/2` (gzip JSON Lines, `format2`, `stream`)
or `tfgrid-snapshot/1` (JSON, or gzip when the name ends in `.gz`, `format1`).

The names callers need from loading (the error, the loaded snapshot's interface, the size
limit) are importable from here, whichever module holds them.
"""

from __future__ import annotations

from pathlib import Path

from payouts.snapshot.errors import EventsNotGrouped, SnapshotError, describe, header_error
from payouts.snapshot.limits import DEFAULT_MAX_DECOMPRESSED_BYTES, open_error, too_large
from payouts.snapshot.loaded import EventStats, LoadedSnapshot

__all__ = [
    "DEFAULT_MAX_DECOMPRESSED_BYTES",
    "EventStats",
    "EventsNotGrouped",
    "LoadedSnapshot",
    "SnapshotError",
    "describe",
    "header_error",
    "load_snapshot",
    "open_error",
    "too_large",
]


def load_snapshot(
    path: str | Path, *, max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES, processes: int = 1
) -> LoadedSnapshot:
    """Read a snapshot file (`tfgrid-snapshot/1` or `/2`) and validate its structure; events are
    checked as they are read. A file larger than `max_decompressed_bytes` once decompressed is
    refused. `processes` above 1 lets a large `/2` month be read by that many processes (the
    result is the same).

    Raises SnapshotError naming the file, the JSON path and the problem.
    """
    from payouts.snapshot.format1 import load_snapshot_1
    from payouts.snapshot.format2 import is_format_2
    from payouts.snapshot.stream import load_snapshot_2

    path = Path(path)
    if is_format_2(path):
        return load_snapshot_2(path, max_decompressed_bytes=max_decompressed_bytes, processes=processes)
    return load_snapshot_1(path, max_decompressed_bytes=max_decompressed_bytes)
