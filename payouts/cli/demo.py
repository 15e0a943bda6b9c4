"""`payouts demo`: the monthly job end to end on the embedded defaults, in a clean folder.

No external server: a sandbox Stellar network on loopback, a SQLite ledger, and the workers'
services called in this process. The same monthly job the Celery workers run takes the period
from frozen inputs to an exported, reconciled run; the demo signs the approval a treasury
operator would give with a throwaway approver key.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Annotated

import typer

from payouts.cli.console import abort, err_console, out_console
from payouts.cli.context import CliContext
from payouts.export.wording import waits_for_line
from payouts.money import format_tft
from payouts.periods import Period


def demo(
    ctx: typer.Context,
    nodes: Annotated[int, typer.Option(min=1, help="Nodes in the synthetic month.")] = 500,
    period: Annotated[str, typer.Option(help="Month to run (label like 2025-11).")] = "2025-11",
    folder: Annotated[Path, typer.Option("--dir", help="Demo state folder (emptied first).")] = Path("demo"),
    seed: Annotated[int, typer.Option(help="Seed of the synthetic grid.")] = 7,
    channels: Annotated[int, typer.Option(min=1, max=100, help="Channel accounts on the sandbox.")] = 20,
    ledger_close_s: Annotated[float, typer.Option(min=0.05, help="Sandbox ledger close interval (s).")] = 0.5,
) -> None:
    """Run a month end to end: sandbox network and accounts, a synthetic grid, calculation,
    approval, payment on the sandbox, reconciliation and the farmer export."""
    from rich.table import Table
    from sqlmodel import Session, func, select
    from stellar_sdk import Keypair

    from config.settings import Settings
    from payouts.ledger.db import session_scope
    from payouts.ledger.models import Payment
    from payouts.ledger.states import PaymentStatus
    from payouts.runs.approvals import approve_run, build_manifest, sign_manifest
    from payouts.runs.service import require_run
    from payouts.sandbox import running_sandbox
    from payouts.sandbox.accounts import fund_payout_account, init_sandbox
    from payouts.snapshot.synthetic import write_synthetic_snapshot
    from payouts.stellar.horizon import HorizonClient
    from payouts.stellar.keys import write_keypair
    from payouts.wiring import build_monthly_job, export_dir

    started = time.perf_counter()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    month = Period.from_label(period)

    with running_sandbox(
        ledger_close_s=ledger_close_s, ops_per_ledger=10_000, seed=seed, submission_timeout_s=30
    ) as sandbox:
        err_console.print(f"sandbox network at {sandbox.url} ({ledger_close_s} s ledgers)")
        accounts = folder / "sandbox-accounts.json"
        document = init_sandbox(sandbox.url, accounts, farmers=60, channels=channels, without_trustline=2).document
        approver = Keypair.random()
        write_keypair(folder / "approver.key", approver)
        drop_folder = folder / "snapshots"
        drop_folder.mkdir()
        snapshot_path = drop_folder / f"{month.label}.json.gz"
        err_console.print(f"synthesizing {nodes} nodes for {month} -> {snapshot_path}")
        write_synthetic_snapshot(
            snapshot_path,
            nodes=nodes,
            period=month,
            seed=seed,
            network="dev",
            farm_addresses=[f["public_key"] for f in document["farmers"]],
        )
        settings = Settings(
            state_dir=folder,
            database_url=None,
            network="dev",
            horizon_url=sandbox.url,
            stellar_accounts_file=accounts,
            approvers=[approver.public_key],
            approvals_required=1,
            first_period=month.label,
            snapshot_source="drop_folder",
            snapshot_drop_folder=drop_folder,
        )
        cli = CliContext(settings=settings)
        ctx.find_root().obj = cli
        db = cli.engine()
        monthly_job = build_monthly_job(settings, db)

        step = monthly_job.advance(month.offset)  # freeze and calculate; then it waits for approvals
        if step.run_id is None:
            abort(f"the period did not calculate: {step.waits_for}")
        with session_scope(db) as session:
            run = require_run(session, step.run_id)
            fund_payout_account(sandbox.url, document, run.total_tft_units)  # single tier: the hot account
            approve_run(
                session,
                run,
                public_key=approver.public_key,
                signature_b64=sign_manifest(build_manifest(session, run), approver),
                approvers=[approver.public_key],
                required=1,
            )
        err_console.print(f"run {step.run_id} calculated and approved by {approver.public_key[:8]}…; paying")
        with err_console.status("paying on the sandbox, reconciling, exporting"):
            step = monthly_job.advance(month.offset)
        with HorizonClient(sandbox.url) as client:
            payout = document["payout"]["public_key"]
            on_chain = [r for r in client.payments(payout) if r.get("type") == "payment" and r.get("from") == payout]
        if step.run_id is None:
            abort(f"the period has no run any more: {step.waits_for}")
        with Session(db) as session:
            run = require_run(session, step.run_id)
            counts = dict(
                session.exec(
                    select(Payment.status, func.count()).where(Payment.run_id == run.id).group_by(Payment.status)
                ).all()
            )
            paid_units = session.exec(
                select(func.coalesce(func.sum(Payment.amount_tft_units), 0)).where(
                    Payment.run_id == run.id, Payment.status == PaymentStatus.PAID
                )
            ).one()
    table = Table(title=f"{month}: run {run.id}", show_header=False)
    rows = {
        "status": run.status,
        "nodes / rewarded": f"{run.node_count:,} / {run.rewarded_node_count:,}",
        "total reward": f"{format_tft(run.total_tft_units)} TFT",
        "paid": f"{counts.get('paid', 0):,} payments, {format_tft(paid_units)} TFT",
        "held": f"{counts.get('held', 0):,} payments (payouts held)",
        "confirmed on the sandbox": f"{len(on_chain):,} payments in the payout account's history",
        "export": str(export_dir(settings) / month.label),
        "status site": str(export_dir(settings) / "site" / "index.html"),
        "ledger": settings.ledger_url_for_display(),
    }
    for key, value in rows.items():
        table.add_row(key, value)
    out_console.print(table)
    if step.waits_for:
        err_console.print(waits_for_line(step.waits_for))
    err_console.print(
        f"done in {time.perf_counter() - started:.1f} s; look around with: PAYOUTS_STATE_DIR={folder} payouts runs"
    )
