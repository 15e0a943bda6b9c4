"""`payouts synth`: write a synthetic grid month."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from payouts.cli.console import abort, err_console
from payouts.periods import PeriodError, resolve_period
from payouts.snapshot.synthetic import write_synthetic_snapshot


def synth(
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write (.json, or .json.gz to gzip).")],
    nodes: Annotated[int, typer.Option(min=1, help="Number of nodes in the grid.")] = 500,
    period: Annotated[str | None, typer.Option(help="Month label, e.g. 2025-11.")] = None,
    period_offset: Annotated[int | None, typer.Option(help="Period offset, e.g. 91.")] = None,
    seed: Annotated[int, typer.Option(help="Seed: the same arguments write a byte-identical file.")] = 0,
    network: Annotated[str, typer.Option(help="Network written into the snapshot: main, test or dev.")] = "dev",
) -> None:
    """Write a realistic synthetic month of the grid as a tfgrid-snapshot/1 file.

    Reports every 40 minutes with jitter, reboots, outages, sleeping farmerbot nodes, a few
    violations, farms without a payout address, both certifications, NU and public IPs.
    """
    if period is None and period_offset is None:
        period = "2025-11"
    try:
        month = resolve_period(period, period_offset)
    except PeriodError as exc:
        abort(str(exc), code=2)
    if network not in ("main", "test", "dev"):
        abort(f"--network must be main, test or dev, not {network!r}", code=2)
    with Progress(TextColumn("[bold]synthesizing[/]"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err_console, transient=True) as bar:
        task = bar.add_task("nodes", total=nodes)
        summary = write_synthetic_snapshot(
            out, nodes=nodes, period=month, seed=seed, network=network,
            progress=lambda done: bar.update(task, completed=done),
        )
    err_console.print(
        f"wrote {summary.path}: {month}, {summary.nodes:,} nodes, {summary.farms:,} farms, "
        f"{summary.uptime_events:,} uptime reports, {summary.power_events:,} power events "
        f"({summary.bytes_written / 1e6:.1f} MB of JSON)"
    )
