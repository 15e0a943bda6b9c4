"""Run commands: calculate a period, list runs, show the review of one."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from payouts.cli.console import abort, err_console, out_console, print_json
from payouts.cli.context import get_context
from payouts.cli.rehearsal import trigger_line
from payouts.money import format_tft, format_usd
from payouts.periods import Period

if TYPE_CHECKING:  # the ledger and the calculation load when a command runs, not for its --help
    from payouts.runs.review import Review
    from payouts.runs.service import ReceiptFields


def calculate(
    ctx: typer.Context,
    snapshot_path: Annotated[
        Path, typer.Option("--snapshot", "-s", help="Snapshot file (tfgrid-snapshot/1 .json[.gz], or /2 .jsonl.gz).")
    ],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Calculate only; record nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document to stdout.")] = False,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Replace the period's run if it is not approved yet."),
    ] = False,
) -> None:
    """Calculate every node's reward for the snapshot's period and record the run.

    The same snapshot again prints the existing run. A different snapshot for a period that
    has a run is refused unless --replace is given and the run is not approved yet.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from payouts.ledger import repository
    from payouts.runs.errors import RunsError
    from payouts.runs.service import calculate_run, calculation_document
    from payouts.snapshot.load import SnapshotError, load_snapshot

    cli = get_context(ctx)
    try:
        snapshot = load_snapshot(snapshot_path, max_decompressed_bytes=cli.settings.snapshot_max_bytes)
    except SnapshotError as exc:
        abort(f"snapshot refused: {exc}", code=2)
    node_count = len(snapshot.header.nodes)
    with Progress(
        TextColumn("[bold]calculating[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=as_json and not err_console.is_terminal,
    ) as bar:
        task = bar.add_task(Period(snapshot.header.period_offset).label, total=node_count)
        try:
            with cli.session() as session:
                outcome = calculate_run(
                    session,
                    snapshot,
                    replace=replace,
                    dry_run=dry_run,
                    progress=lambda done: bar.update(task, completed=done),
                    max_retries=cli.settings.max_retries,
                )
                receipts: Sequence[ReceiptFields]
                if outcome.run is not None and not outcome.created:  # already calculated: as recorded
                    receipts = repository.receipts_of_run(session, repository.id_of(outcome.run))
                elif outcome.calculation is not None:
                    receipts = outcome.calculation.receipts
                else:
                    raise RunsError("the calculation returned neither a run nor receipts")
                document = calculation_document(
                    outcome.period,
                    outcome.run.id if outcome.run else None,
                    outcome.snapshot_sha256,
                    receipts,
                )
        except SnapshotError as exc:
            abort(f"snapshot refused: {exc}", code=2)
        except RunsError as exc:
            abort(str(exc))
    if as_json:
        print_json(document)
        return
    _print_calculation_summary(document, outcome)


def _print_calculation_summary(document: dict, outcome) -> None:
    from rich.table import Table

    totals = document["totals"]
    period = Period(document["period"]["offset"])
    counts: dict[str, int] = {}
    for receipt in document["receipts"]:
        counts[receipt["eligibility"]] = counts.get(receipt["eligibility"], 0) + 1
    if outcome.run is None:
        head = "dry run, nothing recorded"
    elif outcome.created:
        head = f"run {outcome.run.id} recorded"
        if outcome.replaced_run_id:
            head += f" (replaces run {outcome.replaced_run_id})"
    else:
        head = f"already calculated as run {outcome.run.id} ({outcome.run.status})"
    table = Table(title=f"Period {period} — {head}", show_header=False, title_justify="left")
    table.add_row("snapshot sha256", document["snapshot_sha256"])
    table.add_row("nodes", f"{totals['nodes']:,}")
    table.add_row("rewarded nodes", f"{totals['rewarded_nodes']:,}")
    table.add_row("total", f"{format_tft(totals['tft'])} TFT ({format_usd(totals['musd'])})")
    for word, count in sorted(counts.items()):
        table.add_row(f"  {word}", f"{count:,}")
    out_console.print(table)


def runs(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
) -> None:
    """List every run with its state and what it waits for."""
    from rich.table import Table

    from payouts.ledger import repository
    from payouts.runs.advance import describe_wait
    from payouts.runs.approvals import required_approvals
    from payouts.runs.control import pause_state

    cli = get_context(ctx)
    settings = cli.settings
    required = required_approvals(settings.network, settings.approvals_required)
    with cli.session() as session:
        paused = pause_state(session)
        rows: list[dict[str, Any]] = [
            {
                "run_id": run.id,
                "period": Period(run.period_offset).label,
                "period_offset": run.period_offset,
                "status": run.status,
                "waits_for": describe_wait(
                    session, run, approvers=settings.approvers, approvals_required=required, two_tier=settings.two_tier
                ),
                "nodes": run.node_count,
                "total_tft_units": run.total_tft_units,
                "snapshot_sha256": run.snapshot_sha256,
                "created_at": run.created_at.isoformat(),
            }
            for run in repository.list_runs(session)
        ]
    if as_json:
        print_json(rows)
        return
    if paused.paused:
        err_console.print(
            f"[bold yellow]payouts are paused[/] since {paused.since:%Y-%m-%d %H:%M} UTC: "
            f"{paused.reason} (payouts resume)"
        )
    if not rows:
        err_console.print(
            "No runs yet. Calculate one with: payouts calculate --snapshot FILE, "
            "or run a period with: payouts run --period 2025-11 --in-process"
        )
        err_console.print(trigger_line(settings.schedule_cron, settings.schedule_every_s, None))
        return
    table = Table(title="Runs")
    for column in ("run", "period", "status", "waits for", "nodes", "total TFT", "snapshot"):
        table.add_column(column, justify="right" if column in ("run", "nodes", "total TFT") else "left")
    for row in rows:
        table.add_row(
            str(row["run_id"]),
            row["period"],
            row["status"],
            row["waits_for"],
            f"{row['nodes']:,}",
            format_tft(row["total_tft_units"]),
            row["snapshot_sha256"][:12],
        )
    out_console.print(table)
    waiting = [row["period"] for row in rows if row["status"] not in _SETTLED]
    err_console.print(trigger_line(settings.schedule_cron, settings.schedule_every_s, waiting[-1] if waiting else None))


#: a run in one of these states waits for nothing the trigger does
_SETTLED = {"exported", "replaced", "rejected"}


def show(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="Run id (see `payouts runs`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the review as JSON.")] = False,
) -> None:
    """Show the review an approver needs: totals against the previous period, largest
    changes, violations, held addresses, new or changed payout addresses, caps."""
    from payouts.runs.approvals import approver_notice, required_approvals
    from payouts.runs.errors import RunsError
    from payouts.runs.review import build_review
    from payouts.runs.service import require_run

    cli = get_context(ctx)
    settings = cli.settings
    with cli.session() as session:
        try:
            run = require_run(session, run_id)
        except RunsError as exc:
            abort(str(exc))
        review = build_review(
            session,
            run,
            cap_node_tft_units=settings.cap_node_tft_units,
            cap_farm_tft_units=settings.cap_farm_tft_units,
            cap_run_tft_units=settings.cap_run_tft_units,
        )
        notice = approver_notice(
            session, settings.approvers, required_approvals(run.network, settings.approvals_required)
        )
    if as_json:
        print_json(review.to_document())
        return
    print_review(review)
    if notice:
        err_console.print(f"approvers: {notice}")


def _delta(current: int, previous: int | None) -> str:
    if previous is None:
        return "—"
    change = current - previous
    return f"{'+' if change >= 0 else '-'}{format_tft(abs(change))}"


def print_review(review: Review) -> None:
    from rich.table import Table

    summary = Table(
        title=f"Run {review.run_id} — period {review.period} — {review.status}",
        show_header=False,
        title_justify="left",
    )
    summary.add_row("snapshot sha256", review.snapshot_sha256)
    summary.add_row("code version", review.code_version)
    summary.add_row(
        "compared with",
        f"run {review.previous_run_id}" if review.previous_run_id else "no previous period in the ledger",
    )
    summary.add_row(
        "total TFT",
        f"{format_tft(review.total_tft_units)}  ({_delta(review.total_tft_units, review.previous_total_tft_units)})",
    )
    summary.add_row("payable now TFT", format_tft(review.payable_tft_units))
    summary.add_row("total USD", format_usd(review.total_musd))
    summary.add_row(
        "nodes", f"{review.nodes:,}  (previous {review.previous_nodes if review.previous_nodes is not None else '—'})"
    )
    out_console.print(summary)

    eligibility = Table(title="Receipts by eligibility", title_justify="left")
    eligibility.add_column("eligibility")
    eligibility.add_column("this period", justify="right")
    eligibility.add_column("previous", justify="right")
    for word in sorted(review.by_eligibility.keys() | review.previous_by_eligibility.keys()):
        eligibility.add_row(
            word, str(review.by_eligibility.get(word, 0)), str(review.previous_by_eligibility.get(word, 0))
        )
    out_console.print(eligibility)

    for title, changes in (
        ("Largest changes by farm", review.farm_changes),
        ("Largest changes by node", review.node_changes),
    ):
        if not changes:
            continue
        table = Table(title=title, title_justify="left")
        for column in ("id", "", "previous TFT", "this period TFT", "change TFT"):
            table.add_column(column, justify="left" if column in ("id", "") else "right")
        for change in changes:
            table.add_row(
                str(change.key),
                change.label,
                format_tft(change.previous_tft_units),
                format_tft(change.current_tft_units),
                _delta(change.current_tft_units, change.previous_tft_units),
            )
        out_console.print(table)

    if review.violations:
        out_console.print("Violations: " + ", ".join(f"{name} {count}" for name, count in review.violations.items()))
    if review.held_for_address:
        table = Table(title="Held: farms without a usable payout address", title_justify="left")
        for column in ("farm", "name", "problem", "nodes", "held TFT"):
            table.add_column(column)
        for entry in review.held_for_address:
            table.add_row(
                str(entry["farm_id"]),
                entry["farm_name"],
                entry["eligibility"],
                str(entry["nodes"]),
                format_tft(entry["held_tft_units"]),
            )
        out_console.print(table)
    if review.address_changes:
        table = Table(
            title="Payout addresses new or changed since the previous period (check for hijacks)", title_justify="left"
        )
        for column in ("farm", "name", "previous", "now"):
            table.add_column(column)
        for address in review.address_changes:
            table.add_row(
                str(address.farm_id),
                address.farm_name,
                address.previous_address or "(new farm)",
                address.current_address,
            )
        out_console.print(table)
    if review.quirk_policy_ids:
        out_console.print(
            "[yellow]Policies paid with the reference's non-default-policy quirk (no uptime scaling):[/] "
            + ", ".join(map(str, review.quirk_policy_ids))
        )
    if review.invalid_records:
        out_console.print(f"[yellow]Invalid records ({len(review.invalid_records)}):[/]")
        for record in review.invalid_records[:20]:
            out_console.print(f"  node {record['node_id']} (farm {record['farm_id']}): {record['reason']}")
    for breach in review.cap_breaches:
        where = f"{breach.scope} {breach.key}" if breach.key is not None else breach.scope
        out_console.print(
            f"[bold red]cap exceeded:[/] {where} {format_tft(breach.amount_tft_units)} TFT > cap "
            f"{format_tft(breach.cap_tft_units)} TFT (must be approved explicitly)"
        )
    for note in review.notes:
        out_console.print(f"[dim]snapshot note:[/] {note}")
