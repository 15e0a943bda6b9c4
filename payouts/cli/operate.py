"""Operator commands around the monthly job: run a period now, pause and resume payments,
continue a stopped run."""

from __future__ import annotations

from typing import Annotated

import typer

from payouts.cli.console import abort, err_console, out_console, print_json
from payouts.cli.context import get_context
from payouts.cli.errors import mask_url
from payouts.periods import PeriodError, resolve_period


def run(
    ctx: typer.Context,
    period: Annotated[str | None, typer.Option(help="Month label, e.g. 2025-11.")] = None,
    period_offset: Annotated[int | None, typer.Option(help="Period offset, e.g. 91.")] = None,
    in_process: Annotated[
        bool, typer.Option("--in-process", help="Do the work here, without a broker or workers (pays to the end).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was done as JSON.")] = False,
) -> None:
    """Bring a period forward now: freeze inputs, calculate, pay, reconcile, export.

    It goes as far as it can and stops where the period waits (approvals, funding, an operator,
    the pause switch). Without --in-process the work is queued for the workers (Redis broker).
    Running it twice is harmless: every step checks the ledger first.
    """
    from payouts.runs.errors import RunsError
    from payouts.snapshot.load import SnapshotError
    from payouts.sources.errors import SourceError
    from payouts.stellar.horizon import StellarError
    from payouts.stellar.keys import KeyFileError
    from payouts.wiring import build_orchestrator

    cli = get_context(ctx)
    try:
        month = resolve_period(period, period_offset)
    except PeriodError as exc:
        abort(str(exc), code=2)
    if not in_process:
        from workers.tasks import advance_period  # the broker is only needed here

        try:
            result = advance_period.apply_async(args=[month.offset], retry=False)
        except Exception as exc:  # noqa: BLE001 - kombu raises many kinds; the broker is down
            abort(
                f"cannot queue the run for {month}: Redis at {mask_url(cli.settings.broker_url.get_secret_value())} "
                f"is unreachable ({type(exc).__name__}); start Redis and a worker, or use --in-process"
            )
        if as_json:
            print_json({"period": month.label, "queued": True, "task_id": result.id})
        else:
            out_console.print(f"queued period {month} for the workers (task {result.id}); follow it with: payouts runs")
        return
    try:
        orchestrator = build_orchestrator(cli.settings, cli.engine())
        with err_console.status(f"advancing {month}"):
            step = orchestrator.advance(month.offset)
    except (RunsError, SourceError, SnapshotError, StellarError, KeyFileError, ValueError) as exc:
        abort(str(exc))
    if as_json:
        print_json(step.as_dict())
        return
    done = ", ".join(step.did) or "nothing to do"
    run_text = f"run {step.run_id}" if step.run_id else "no run yet"
    out_console.print(f"{month}: {run_text}, {step.status or '-'}; did: {done}")
    if step.waits_for:
        out_console.print(f"waits for: {step.waits_for}")


def pause(
    ctx: typer.Context,
    reason: Annotated[str, typer.Option(help="Why; shown to every operator and in the logs.")],
) -> None:
    """Stop new submissions everywhere (a kill switch). Transactions already sent are still
    confirmed; nothing new is built or sent until `payouts resume`."""
    from payouts.runs.control import set_paused

    cli = get_context(ctx)
    try:
        with cli.session() as session:
            changed = set_paused(session, True, reason)
    except ValueError as exc:
        abort(str(exc), code=2)
    out_console.print("payouts paused" if changed else "payouts were already paused")


def resume(ctx: typer.Context) -> None:
    """Allow submissions again; paying runs continue at the next trigger or `payouts run`."""
    from payouts.runs.control import pause_state, set_paused

    cli = get_context(ctx)
    with cli.session() as session:
        was = pause_state(session)
        set_paused(session, False)
    if was.paused:
        out_console.print(f"payouts resumed (were paused: {was.reason})")
    else:
        out_console.print("payouts were not paused")


def continue_(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="A stopped run (see `payouts runs`).")],
    accept_differences: Annotated[
        str | None,
        typer.Option(
            help="For a reconciliation mismatch that was investigated: the reason it is accepted. "
            "The run is marked reconciled with the reason on record; nothing is paid again."
        ),
    ] = None,
) -> None:
    """Continue a stopped run exactly where it stopped, once its cause is fixed."""
    from payouts.runs.advance import continue_run
    from payouts.runs.errors import RunsError
    from payouts.runs.service import require_run

    cli = get_context(ctx)
    try:
        with cli.session() as session:
            run = require_run(session, run_id)
            reason = run.status_reason
            status = continue_run(session, run, accept_differences=accept_differences)
    except RunsError as exc:
        abort(str(exc))
    out_console.print(f"run {run_id} continues as {status} (it had stopped: {reason})")
    err_console.print(
        "the workers take it from here at the next trigger, or now with: "
        f"payouts run --period-offset {run.period_offset}"
    )
