"""`payouts demo`: the main job on the embedded defaults, from a clean folder each time."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated

import typer

from config.settings import Settings
from payouts.cli.console import err_console, out_console
from payouts.cli.context import CliContext
from payouts.money import format_tft
from payouts.periods import Period
from payouts.runs.service import calculate_run
from payouts.snapshot.load import load_snapshot
from payouts.snapshot.synthetic import write_synthetic_snapshot


def demo(
    ctx: typer.Context,
    nodes: Annotated[int, typer.Option(min=1, help="Nodes in the synthetic month.")] = 500,
    period: Annotated[str, typer.Option(help="Month to run (label like 2025-11).")] = "2025-11",
    folder: Annotated[Path, typer.Option("--dir", help="Demo state folder (emptied first).")] = Path("demo"),
    seed: Annotated[int, typer.Option(help="Seed of the synthetic grid.")] = 7,
) -> None:
    """Run a month end to end on the embedded defaults: a synthetic grid snapshot, the
    calculation, and the run recorded in a fresh SQLite ledger in --dir."""
    started = time.perf_counter()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    settings = Settings(state_dir=folder, database_url=None)
    cli = CliContext(settings=settings)
    ctx.find_root().obj = cli

    month = Period.from_label(period)
    snapshot_path = folder / f"snapshot-{month.label}.json.gz"
    err_console.print(f"synthesizing {nodes} nodes for {month} -> {snapshot_path}")
    write_synthetic_snapshot(snapshot_path, nodes=nodes, period=month, seed=seed)
    snapshot = load_snapshot(snapshot_path)
    with cli.session() as session:
        outcome = calculate_run(session, snapshot)
        run = outcome.run
        assert run is not None
        summary = {
            "run": run.id,
            "period": month.label,
            "status": run.status,
            "nodes": run.node_count,
            "rewarded nodes": run.rewarded_node_count,
            "total": f"{format_tft(run.total_tft_units)} TFT",
            "payable now": f"{format_tft(run.payable_tft_units)} TFT",
            "ledger": settings.ledger_url_for_display(),
        }
    for key, value in summary.items():
        out_console.print(f"{key:>15}: {value}")
    err_console.print(
        f"done in {time.perf_counter() - started:.1f} s; review it with: "
        f"PAYOUTS_STATE_DIR={folder} payouts show {summary['run']}"
    )
