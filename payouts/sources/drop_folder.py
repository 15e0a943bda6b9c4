"""Snapshots that operators (or another system) drop into a folder, one file per period.

A period's file is named after its month or its offset: `2025-11.json`, `2025-11.json.gz`,
`tfgrid-snapshot-91.json` or `tfgrid-snapshot-91.json.gz` (`tfgrid-snapshot/1`), or
`2025-11.jsonl.gz` / `tfgrid-snapshot-91.jsonl.gz` (`tfgrid-snapshot/2`; the loader tells the
formats apart by their first bytes). Freezing validates the whole file
(header and every event) and copies it byte for byte into the run's folder, so the file the
calculation reads can no longer change under it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from payouts.files import atomic_path
from payouts.periods import Period
from payouts.snapshot.load import DEFAULT_MAX_DECOMPRESSED_BYTES, EventsNotGrouped, SnapshotError, load_snapshot
from payouts.sources.errors import DropFolderAmbiguous, SnapshotUnavailable


def candidate_names(period: Period) -> list[str]:
    names = []
    for stem in (period.label, f"tfgrid-snapshot-{period.offset}"):
        names += [f"{stem}.json", f"{stem}.json.gz", f"{stem}.jsonl.gz"]
    return names


def find_period_file(folder: Path, period: Period) -> Path:
    """The period's file in the drop folder; SnapshotUnavailable when there is none yet."""
    names = candidate_names(period)
    found = [folder / name for name in names if (folder / name).is_file()]
    if not found:
        where = f"the drop folder {folder}" + ("" if folder.is_dir() else " (which does not exist)")
        raise SnapshotUnavailable(f"no snapshot for period {period} in {where}: expected one of {', '.join(names)}")
    if len(found) > 1:
        raise DropFolderAmbiguous(
            f"more than one snapshot for period {period} in {folder}: "
            f"{', '.join(path.name for path in found)}; keep only one"
        )
    return found[0]


def validate_period_file(
    path: Path, period: Period, network: str, *, max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES
) -> str:
    """Validate the whole file for this period and network; returns its SHA-256.

    Raises SnapshotError naming the file, the JSON path and the problem.
    """
    snapshot = load_snapshot(path, max_decompressed_bytes=max_decompressed_bytes)
    header = snapshot.header
    if header.period_offset != period.offset:
        raise SnapshotError(
            path, "$.period_offset", f"expected {period.offset} for period {period.label}, got {header.period_offset}"
        )
    if header.network != network:
        raise SnapshotError(path, "$.network", f"expected {network!r} (the configured network), got {header.network!r}")
    # events are checked as they are read: read them all now, not halfway through a run
    try:
        for _ in snapshot.iter_node_events():
            pass
    except EventsNotGrouped:
        for _ in snapshot.iter_node_events(buffered=True):
            pass
    return snapshot.sha256


def freeze_from_drop_folder(
    folder: Path,
    period: Period,
    network: str,
    out_dir: Path,
    *,
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> Path:
    """Copy the period's validated file into out_dir; an already frozen copy is returned as is."""
    source = find_period_file(folder, period)
    suffix = next(s for s in (".jsonl.gz", ".json.gz", ".json") if source.name.endswith(s))
    target = out_dir / f"tfgrid-snapshot-{period.offset}{suffix}"
    if target.exists():
        return target  # frozen means frozen: the run may already hold its SHA-256
    sha256 = validate_period_file(source, period, network, max_decompressed_bytes=max_decompressed_bytes)
    # the temp name keeps the suffix: the loader decides gzip or not by the name
    with atomic_path(target, keep_suffix=suffix) as temp:
        shutil.copyfile(source, temp)
        copied = load_snapshot(temp, max_decompressed_bytes=max_decompressed_bytes).sha256
        if copied != sha256:
            raise SnapshotError(source, "$", "the file changed while it was being copied; try again")
    return target
