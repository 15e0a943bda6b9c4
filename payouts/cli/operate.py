"""Operator commands around the monthly job: run a period now, pause and resume payments,
continue a stopped run."""

from __future__ import annotations

from typing import Annotated

import typer

from payouts.cli.console import abort, err_console, out_console, print_json
from payouts.cli.context import CliContext, get_context
from payouts.cli.errors import mask_url
from payouts.export.wording import waits_for_line
from payouts.periods import Period, PeriodError, resolve_period


def run(
    ctx: typer.Context,
    period: Annotated[str | None, typer.Option(help="Month label, e.g. 2025-11.")] = None,
    period_offset: Annotated[int | None, typer.Option(help="Period offset, e.g. 91.")] = None,
    in_process: Annotated[
        bool, typer.Option("--in-process", help="Do the work here, without a broker or workers (pays to the end).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was done as JSON.")] = False,
    retries_now: Annotated[
        bool,
        typer.Option(
            "--retries-now",
            help="Pay held payments whose destinations can receive now (a farmer added the trustline) in an "
            "off-cycle run of their own, with its own review, approvals and funding; again to move it on.",
        ),
    ] = False,
    rehearsal: Annotated[
        bool,
        typer.Option(
            "--rehearsal",
            help="Sandbox network only: run a period before its inputs are complete; the run is "
            "marked as a rehearsal and is otherwise like any run (retries, funding, export).",
        ),
    ] = False,
) -> None:
    """Bring a period forward now: freeze inputs, calculate, pay, reconcile, export.

    It goes as far as it can and stops where the period waits (approvals, funding, an operator,
    the pause switch). Without --in-process the work is queued for the workers (Redis broker).
    Running it twice is harmless: every step checks the ledger first. A period without a run
    is refused until its post-period window (end + 27 h) has closed by the chain's time
    (exit 3, saying when); --rehearsal allows it earlier on the sandbox network.

    With --retries-now, no period is named: the open off-cycle run moves on, or a new one is
    made of the held payments whose destinations can receive now. It never holds or replaces a
    period's monthly run, and what it retries the next monthly run does not retry again.
    """
    from payouts.runs.errors import RunsError
    from payouts.snapshot.load import SnapshotError
    from payouts.sources.errors import SourceError
    from payouts.stellar.horizon import StellarError
    from payouts.stellar.keys import KeyFileError
    from payouts.wiring import build_monthly_job

    cli = get_context(ctx)
    if retries_now:
        if period is not None or period_offset is not None:
            abort("--retries-now takes no period: it pays held payments of any period", code=2)
        _retries_now(cli, in_process=in_process, as_json=as_json)
        return
    try:
        month = resolve_period(period, period_offset)
    except PeriodError as exc:
        abort(str(exc), code=2)
    _require_inputs(cli, month, rehearsal)
    if not in_process:
        from workers.tasks import advance_period  # the broker is only needed here

        try:
            result = advance_period.apply_async(
                args=[month.offset], kwargs={"rehearsal": True} if rehearsal else {}, retry=False
            )
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
        monthly_job = build_monthly_job(cli.settings, cli.engine(), clock=cli.time())
        with err_console.status(f"advancing {month}"):
            step = monthly_job.advance(month.offset, rehearsal=rehearsal)
    except (RunsError, SourceError, SnapshotError, StellarError, KeyFileError, ValueError) as exc:
        abort(str(exc))
    if as_json:
        print_json(step.as_dict())
        return
    done = ", ".join(step.did) or "nothing to do"
    run_text = f"run {step.run_id}" if step.run_id else "no run yet"
    out_console.print(f"{month}: {run_text}, {step.status or '-'}; did: {done}")
    if step.waits_for:
        out_console.print(waits_for_line(step.waits_for))


def _retries_now(cli: CliContext, *, in_process: bool, as_json: bool) -> None:
    from payouts.runs.errors import RunsError
    from payouts.runs.retries_now import NothingToRetry
    from payouts.stellar.horizon import StellarError
    from payouts.stellar.keys import KeyFileError
    from payouts.wiring import build_monthly_job

    if not in_process:
        from workers.tasks import retries_now  # the broker is only needed here

        try:
            result = retries_now.apply_async(retry=False)
        except Exception as exc:  # noqa: BLE001 - kombu raises many kinds; the broker is down
            abort(
                f"cannot queue the off-cycle run: Redis at {mask_url(cli.settings.broker_url.get_secret_value())} "
                f"is unreachable ({type(exc).__name__}); start Redis and a worker, or use --in-process"
            )
        if as_json:
            print_json({"retries_now": True, "queued": True, "task_id": result.id})
        else:
            out_console.print(
                f"queued the off-cycle run of retries for the workers (task {result.id}); follow it with: payouts runs"
            )
        return
    try:
        monthly_job = build_monthly_job(cli.settings, cli.engine())
        with err_console.status("off-cycle run of retries"):
            step = monthly_job.retries_now()
    except NothingToRetry as exc:
        if as_json:
            print_json({"run_id": None, "did": [], "status": "", "waits_for": str(exc)})
            return
        out_console.print(str(exc))
        return
    except (RunsError, StellarError, KeyFileError, ValueError) as exc:
        abort(str(exc))
    if as_json:
        print_json(step.as_dict())
        return
    done = ", ".join(step.did) or "nothing to do"
    out_console.print(f"off-cycle run {step.run_id} (beside {step.period}), {step.status or '-'}; did: {done}")
    if step.waits_for:
        out_console.print(waits_for_line(step.waits_for))


def _require_inputs(cli, month: Period, rehearsal: bool) -> None:
    """A period with no run yet is calculated only once its inputs are complete (or as a
    sandbox rehearsal); one that has a run goes on whatever the clock says."""
    from payouts.ledger import repository
    from payouts.runs.completeness import (
        PeriodIncomplete,
        RehearsalRefused,
        require_complete,
        require_rehearsal_network,
    )

    try:
        if rehearsal:
            require_rehearsal_network(cli.settings.network)
        with cli.session() as session:
            if repository.live_run_for_period(session, month.offset) is not None:
                return
        require_complete(month, cli.time(), network=cli.settings.network, rehearsal=rehearsal)
    except PeriodIncomplete as exc:
        abort(f"not run: {exc}", code=EXIT_NOT_YET)
    except RehearsalRefused as exc:
        abort(str(exc), code=2)


#: exit code for a period whose inputs are not complete yet: try again after the time given
EXIT_NOT_YET = 3


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
    from payouts.ledger.repository import OFF_CYCLE_RUN
    from payouts.runs.errors import RunsError
    from payouts.runs.monthly import continue_run
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
    now = (
        "payouts run --retries-now" if run.kind == OFF_CYCLE_RUN else f"payouts run --period-offset {run.period_offset}"
    )
    err_console.print(f"the workers take it from here at the next trigger, or now with: {now}")
