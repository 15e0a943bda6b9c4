"""Where a period's frozen inputs come from: a drop folder or TFChain's GraphQL indexer.

`freeze_snapshot` is what the monthly job calls. It returns the path of a validated
snapshot file for the period inside `out_dir` (`tfgrid-snapshot/2` when built from the indexer), or raises `SnapshotUnavailable`
when the period's input is not there yet (the job tries again on its next run).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Protocol

from payouts.periods import Period
from payouts.snapshot.load import load_snapshot
from payouts.sources.drop_folder import freeze_from_drop_folder
from payouts.sources.errors import (
    CrossCheckFailed,
    DropFolderAmbiguous,
    IndexerBehind,
    IndexerDataError,
    IndexerQueryError,
    IndexerUnreachable,
    SnapshotUnavailable,
    SourceError,
)
from payouts.sources.indexer import BuildOptions, build_snapshot, default_endpoints
from payouts.sources.policies import PolicyFileError, PolicyValueUnknown, load_policy_file


class SourceSettings(Protocol):
    """What the sources read of the product's settings (the edges hand their settings in;
    nothing here imports them)."""

    @property
    def network(self) -> str: ...
    @property
    def snapshot_source(self) -> str: ...
    @property
    def snapshot_drop_folder(self) -> Path: ...
    @property
    def snapshot_max_bytes(self) -> int: ...
    @property
    def graphql_url(self) -> str | None: ...
    @property
    def gridproxy_url(self) -> str | None: ...
    @property
    def snapshot_policies_file(self) -> Path | None: ...
    @property
    def tfchain_rpc_url(self) -> str | None: ...


__all__ = [
    "CrossCheckFailed",
    "DropFolderAmbiguous",
    "IndexerBehind",
    "IndexerDataError",
    "IndexerQueryError",
    "IndexerUnreachable",
    "PolicyFileError",
    "PolicyValueUnknown",
    "SnapshotUnavailable",
    "SourceError",
    "SourceSettings",
    "endpoints",
    "freeze_snapshot",
]


def endpoints(settings: SourceSettings, network: str | None = None) -> tuple[str, str | None]:
    """(GraphQL URL, grid proxy URL): the settings' URLs, else the network's defaults."""
    graphql_default, gridproxy_default = default_endpoints(network or settings.network)
    return settings.graphql_url or graphql_default, settings.gridproxy_url or gridproxy_default


def freeze_snapshot(
    settings: SourceSettings, period_offset: int, out_dir: Path, options: BuildOptions | None = None
) -> Path:
    """The path of a frozen snapshot file of the period in out_dir.

    drop_folder: the period's file from `settings.snapshot_drop_folder`, validated and copied.
    indexer: built from the indexer (`settings.graphql_url` or the network's default), with
    the grid proxy cross-check. A file already frozen in out_dir is returned as is.

    Raises SnapshotUnavailable (try again later), SnapshotError (a refused drop file, naming
    the file and JSON path) or another SourceError.
    """
    period = Period(period_offset)
    out_dir = Path(out_dir)
    if settings.snapshot_source == "drop_folder":
        return freeze_from_drop_folder(
            settings.snapshot_drop_folder,
            period,
            settings.network,
            out_dir,
            max_decompressed_bytes=settings.snapshot_max_bytes,
        )
    target = out_dir / f"tfgrid-snapshot-{period.offset}.json.gz"
    if target.exists():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    graphql_url, gridproxy_url = endpoints(settings)
    if settings.snapshot_policies_file is not None and (options is None or options.policy_file is None):
        options = replace(options or BuildOptions(), policy_file=load_policy_file(settings.snapshot_policies_file))
    if settings.tfchain_rpc_url is not None and (options is None or options.rpc_url is None):
        options = replace(options or BuildOptions(), rpc_url=settings.tfchain_rpc_url)
    build_snapshot(
        target,
        period=period,
        network=settings.network,
        graphql_url=graphql_url,
        gridproxy_url=gridproxy_url,
        options=options,
    )
    load_snapshot(target, max_decompressed_bytes=settings.snapshot_max_bytes)  # as the calculation reads it
    return target
