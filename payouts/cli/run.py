"""Run commands: calculate a period, list runs, show the review of one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
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
    rehearsal: Annotated[
        bool,
        typer.Option(
            "--rehearsal",
            help="Sandbox network only: calculate before the period's inputs are complete; the run is "
            "marked as a rehearsal and is otherwise like any run.",
        ),
    ] = False,
    processes: Annotated[
        int | None,
        typer.Option(
            "--processes",
            min=1,
            help="Processes reading a large /2 month (default: the calculation_processes setting); "
            "1 reads in one process. The result is the same.",
        ),
    ] = None,
) -> None:
    """Calculate every node's reward for the snapshot's period and record the run.

    The same snapshot again prints the existing run. A different snapshot for a period that
    has a run is refused unless --replace is given and the run is not approved yet. A period is
    calculated only after its post-period window (end + 27 h) has closed by the chain's time
    (exit 3 before, saying when); --rehearsal allows it earlier on the sandbox network.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from payouts.ledger import repository
    from payouts.runs.completeness import PeriodIncomplete, RehearsalRefused, require_rehearsal_network
    from payouts.runs.errors import RunsError
    from payouts.runs.service import calculate_run, calculation_document
    from payouts.snapshot.load import SnapshotError, load_snapshot

    cli = get_context(ctx)
    if rehearsal:
        try:
            require_rehearsal_network(cli.settings.network)
        except RehearsalRefused as exc:
            abort(str(exc), code=2)
    try:
        snapshot = load_snapshot(
            snapshot_path,
            max_decompressed_bytes=cli.settings.snapshot_max_bytes,
            processes=processes or cli.settings.calculation_processes,
        )
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
                    clock=cli.time(),
                    rehearsal=rehearsal,
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
                document["rehearsal"] = bool(outcome.run.rehearsal) if outcome.run is not None else rehearsal
        except SnapshotError as exc:
            abort(f"snapshot refused: {exc}", code=2)
        except PeriodIncomplete as exc:
            abort(f"not calculated: {exc}", code=EXIT_NOT_YET)
        except RehearsalRefused as exc:
            abort(str(exc), code=2)
        except RunsError as exc:
            abort(str(exc))
    if as_json:
        print_json(document)
        return
    _print_calculation_summary(document, outcome)


#: exit code for a period whose inputs are not complete yet: try again after the time given
EXIT_NOT_YET = 3


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
        if outcome.run.rehearsal:
            head += ", a rehearsal"
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

    from payouts.cli.surplus import surplus_warning
    from payouts.export.wording import WAITS_FOR
    from payouts.ledger import repository
    from payouts.ledger.repository import OFF_CYCLE_RUN, id_of
    from payouts.ledger.states import RunStatus
    from payouts.runs.approvals import required_approvals
    from payouts.runs.control import pause_state
    from payouts.runs.monthly import describe_wait
    from payouts.runs.progress import run_progress

    #: runs whose payments have started: `runs` shows paid, held and pending counts
    paying_or_later = {RunStatus.PAYING, RunStatus.STOPPED} | {s for s in RunStatus if s.is_paid_or_after}
    cli = get_context(ctx)
    settings = cli.settings
    required = required_approvals(settings.network, settings.approvals_required)
    with cli.session() as session:
        paused = pause_state(session)
        all_runs = repository.list_runs(session)
        progress = run_progress(session, [id_of(run) for run in all_runs])
        rows: list[dict[str, Any]] = [
            {
                "run_id": run.id,
                "period": Period(run.period_offset).label,
                "period_offset": run.period_offset,
                "kind": run.kind,
                "status": run.status,
                "rehearsal": bool(run.rehearsal),
                "waits_for": describe_wait(
                    session, run, approvers=settings.approvers, approvals_required=required, two_tier=settings.two_tier
                ),
                "nodes": run.node_count,
                "total_tft_units": run.total_tft_units,
                "snapshot_sha256": run.snapshot_sha256,
                "created_at": run.created_at.isoformat(),
                "payments": progress[id_of(run)].document(),
            }
            for run in all_runs
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
    for column in ("run", "period", "status", WAITS_FOR, "nodes", "total TFT", "payments", "snapshot"):
        table.add_column(column, justify="right" if column in ("run", "nodes", "total TFT") else "left")
    for row in rows:
        table.add_row(
            str(row["run_id"]),
            row["period"]
            + (" (off-cycle)" if row["kind"] == OFF_CYCLE_RUN else "")
            + (" (rehearsal)" if row["rehearsal"] else ""),
            row["status"],
            row["waits_for"],
            f"{row['nodes']:,}",
            format_tft(row["total_tft_units"]),
            # counts for runs being paid (and after): where the money stands
            progress[row["run_id"]].line().replace(", ", "\n") if row["status"] in paying_or_later else "",
            row["snapshot_sha256"][:12],
        )
    out_console.print(table)
    if warning := surplus_warning(cli):
        err_console.print(warning)
    waiting = [row["period"] for row in rows if not RunStatus(row["status"]).is_settled]
    err_console.print(trigger_line(settings.schedule_cron, settings.schedule_every_s, waiting[-1] if waiting else None))


def show(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="Run id (see `payouts runs`).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the review as JSON.")] = False,
) -> None:
    """Show the review an approver needs: totals against the previous period, largest
    changes, violations, held addresses, new or changed payout addresses, caps."""
    from payouts.runs.approvals import approver_notice, required_approvals
    from payouts.runs.errors import RunsError
    from payouts.runs.service import require_run

    cli = get_context(ctx)
    settings = cli.settings
    with cli.session() as session:
        try:
            run = require_run(session, run_id)
        except RunsError as exc:
            abort(str(exc))
        from payouts.wiring import review_of  # the composition root, for the show only

        review = review_of(settings, session, run)
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
        title=f"Run {review.run_id} — period {review.period} — {review.status}"
        + (" — a rehearsal (sandbox)" if review.rehearsal else ""),
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
    summary.add_row(
        "period",
        f"{review.period_month}: {_when(review.period_start)} to {_when(review.period_end)}",
    )
    summary.add_row(
        "to sign",
        f"{review.manifest_payment_count:,} payments, {format_tft(review.manifest_total_tft_units)} TFT "
        f"(manifest {review.manifest_sha256[:16]})",
    )
    summary.add_row("total USD", format_usd(review.total_musd))
    summary.add_row(
        "nodes", f"{review.nodes:,}  (previous {review.previous_nodes if review.previous_nodes is not None else '—'})"
    )
    out_console.print(summary)
    out_console.print(f"Claimable policy (as the manifest records it): {review.claimable_policy_text}")
    _print_signed(review)
    _print_approvals_and_balances(review)

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
    _print_flags(review)
    for note in review.notes:
        out_console.print(f"[dim]snapshot note:[/] {note}")


def _when(iso: str) -> str:
    moment = datetime.fromisoformat(iso)
    return f"{moment:%a} {moment.day} {moment:%b %Y %H:%M:%S} UTC"


_SECTION_TITLES: dict[str, str] = {"receipt": "new receipts", "retry": "retries", "correction": "corrections"}


def _print_signed(review: Review) -> None:
    """The manifest's payments by kind: the sections add up to what the approvers sign."""
    from rich.table import Table

    table = Table(title="What the approvers sign", title_justify="left")
    for column in ("section", "payments", "TFT"):
        table.add_column(column, justify="left" if column == "section" else "right")
    for section in review.sections:
        table.add_row(
            _SECTION_TITLES.get(section.kind, section.kind), f"{section.payments:,}", format_tft(section.tft_units)
        )
    table.add_row(
        "[bold]manifest total[/]",
        f"[bold]{review.manifest_payment_count:,}[/]",
        f"[bold]{format_tft(review.manifest_total_tft_units)}[/]",
    )
    out_console.print(table)
    for section in review.sections:
        if not section.entries:
            continue
        detail = Table(title=f"{_SECTION_TITLES.get(section.kind, section.kind).capitalize()}", title_justify="left")
        for column in ("payment", "farm", "node", "of period", "to", "TFT"):
            detail.add_column(column, justify="right" if column in ("payment", "TFT") else "left")
        for entry in section.entries[:50]:
            detail.add_row(
                str(entry["payment_id"]),
                str(entry["farm_id"]),
                "" if entry["node_id"] is None else str(entry["node_id"]),
                entry["of_period"] or "?",
                entry["destination"],
                format_tft(entry["amount_tft_units"]),
            )
        out_console.print(detail)
        if len(section.entries) > 50:
            out_console.print(f"  ... and {len(section.entries) - 50:,} more (payouts show {review.run_id} --json)")


def _print_approvals_and_balances(review: Review) -> None:
    from rich.table import Table

    from payouts.cli.rehearsal import human_utc

    if review.approvals:
        table = Table(title="Approvals so far", title_justify="left")
        for column in ("approver", "when", "counts"):
            table.add_column(column)
        for approval in review.approvals:
            table.add_row(
                approval["approver"],
                human_utc(datetime.fromisoformat(approval["at"])),
                "yes" if approval["counts"] else "no (signed another state of the run)",
            )
        out_console.print(table)
    else:
        out_console.print("Approvals so far: none")
    table = Table(title="Balances against what is due", title_justify="left")
    for column in ("account", "", "TFT held", "TFT due", ""):
        table.add_column(column, justify="right" if column.startswith("TFT") else "left")
    for balance in review.balances:
        if balance.tft_units is None:
            held, state = "unavailable", balance.unavailable
        else:
            held = format_tft(balance.tft_units)
            short = balance.short_tft_units or 0
            state = f"[red]short {format_tft(short)}[/]" if short else "enough"
            if balance.unavailable:
                state += f" ({balance.unavailable})"
        table.add_row(balance.role, balance.account_id or "-", held, format_tft(balance.due_tft_units), state)
    out_console.print(table)


_EXCEEDANCE_WORDS = {
    "node_cap": ("node", "TFT", "the per-node cap"),
    "farm_cap": ("farm", "TFT", "the per-farm cap"),
    "run_cap": ("run", "TFT", "the per-run cap"),
    "cores": ("node", "cores", "what one server holds"),
    "memory_gib": ("node", "GiB of memory", "what one server holds"),
    "ssd_gib": ("node", "GiB of SSD", "what one server holds"),
    "hdd_gib": ("node", "GiB of HDD", "what one server holds"),
}


def exceedance_text(exceedance) -> str:
    """'node 12: 150,000.0000000 TFT, above the per-node cap of 100,000.0000000 TFT'."""
    scope, unit, limit = _EXCEEDANCE_WORDS.get(exceedance.kind, (exceedance.kind, "", "the limit"))
    where = scope if exceedance.key is None else f"{scope} {exceedance.key}"
    if unit == "TFT":
        return f"{where}: {format_tft(exceedance.value)} TFT, above {limit} of {format_tft(exceedance.limit)} TFT"
    return f"{where}: {exceedance.value:,} {unit}, above {limit} ({exceedance.limit:,})"


def _print_flags(review: Review) -> None:
    if review.identical_to_previous:
        out_console.print(
            "[bold yellow]flag:[/] every node has the same uptime and reward as the previous period "
            "(a stale or repeated snapshot?)"
        )
    if review.all_addresses_new:
        out_console.print(
            "[bold yellow]flag:[/] not one payout address was paid to in the previous period "
            "(a swapped source or hijacked farms?)"
        )
    for outlier in review.outliers:
        out_console.print(
            f"[bold yellow]flag:[/] {outlier.scope} {outlier.key} gets {format_tft(outlier.current_tft_units)} TFT, "
            f"more than {outlier.factor}x its highest of the previous months "
            f"({format_tft(outlier.previous_max_tft_units)} TFT)"
        )
    unaccepted = set(review.unaccepted_exceedances)
    for exceedance in review.exceedances:
        state = "[bold red]must be accepted to approve[/]" if exceedance in unaccepted else "accepted in the manifest"
        out_console.print(f"[bold red]exceeds:[/] {exceedance_text(exceedance)} ({state})")
    if review.accepted_exceedances:
        out_console.print(f"accepted past caps and bounds, in the manifest: {review.accepted_exceedances['reason']}")
    if unaccepted:
        out_console.print(
            f'to approve past them: payouts approve {review.run_id} --key-file KEY --accept-exceedance "why"'
        )
