"""Farmer-facing commands: export the ledger, a farmer's status, the static status site, the
read-only web server, correction entries and the farms' revenue-model sign-on."""

from __future__ import annotations

import contextlib
import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from payouts.cli.console import abort, err_console, out_console, print_json
from payouts.cli.context import get_context
from payouts.export.wording import EntryStatus, eligibility_status
from payouts.files import atomic_path, write_atomic
from payouts.money import format_tft
from payouts.periods import Period, PeriodError, offset_for_label

if TYPE_CHECKING:  # the ledger and rich load when a command runs, not for its --help
    from rich.console import JustifyMethod

    from payouts.export.rows import ExportFilter

farms_app = typer.Typer(help="Farms' sign-on to the revenue model.", no_args_is_help=True)
nodes_app = typer.Typer(help="Nodes' move to the revenue model (v3 opt-out, v4 account).", no_args_is_help=True)


def _period_offset(period: str | None) -> int | None:
    if period is None:
        return None
    text = period.strip()
    try:
        offset = int(text) if text.isdigit() else offset_for_label(text)
        Period(offset).label  # noqa: B018 (validates the offset)
    except PeriodError as exc:
        abort(str(exc), code=2)
    return offset


def _filters(
    period: str | None, farm: int | None, node: int | None, addresses: list[str] | None, receipt: str | None
) -> ExportFilter:
    from payouts.export.rows import ExportFilter

    receipt_hash = receipt.strip().lower() if receipt else None
    if receipt_hash is not None and (len(receipt_hash) != 64 or any(c not in "0123456789abcdef" for c in receipt_hash)):
        abort(f"{receipt!r} is not a receipt or memo hash (64 hex digits)", code=2)
    return ExportFilter(
        period_offset=_period_offset(period),
        farm_id=farm,
        node_id=node,
        addresses=tuple(a.strip() for a in addresses or ()),
        receipt_hash=receipt_hash,
    )


class _Output:
    """--out FILE written to a temporary name and renamed when complete, or stdout."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._files = contextlib.ExitStack()

    def __enter__(self):
        if self.path is None:
            return sys.stdout
        partial = self._files.enter_context(atomic_path(self.path))
        return self._files.enter_context(partial.open("w", encoding="utf-8", newline=""))

    def __exit__(self, kind, value, traceback) -> None:
        if self.path is None:
            sys.stdout.flush()
            return
        self._files.__exit__(kind, value, traceback)


def export(
    ctx: typer.Context,
    period: Annotated[str | None, typer.Option(help="Only this period: a month (2025-11) or an offset (91).")] = None,
    farm: Annotated[int | None, typer.Option(help="Only this farm id.")] = None,
    node: Annotated[int | None, typer.Option(help="Only this node id.")] = None,
    address: Annotated[list[str] | None, typer.Option(help="Only this payout address (repeatable).")] = None,
    receipt: Annotated[str | None, typer.Option(help="Only this receipt, retry, correction or memo hash.")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv, json or jsonl.")] = "csv",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file (default: stdout).")] = None,
    summary: Annotated[
        str | None, typer.Option(help="'farms': per-farm totals (owed, paid, held, by basis) instead of entries.")
    ] = None,
    columns: Annotated[
        str, typer.Option(help="CSV columns: 'farmer' (a short set) or 'full' (every column, raw units too).")
    ] = "farmer",
) -> None:
    """Export every receipt with its state and proof (SPEC 7), streamed row by row.

    JSON carries each run's signed manifest and approvals; batch-mode entries carry their Merkle
    proof and the transaction memo. Amounts in TFT have exactly 7 decimals; times are UTC.
    """
    from payouts import CODE_VERSION
    from payouts.export.rows import FARMER_FIELDS, FIELDS, iso_utc, iter_entries, runs_document
    from payouts.export.summary import SUMMARY_FIELDS, farm_summaries
    from payouts.export.writers import EXPORT_FORMAT, FORMATS, write_csv, write_export
    from payouts.ledger.types import utcnow

    if fmt not in FORMATS:
        abort(f"--format must be one of {', '.join(FORMATS)}", code=2)
    if summary not in (None, "farms"):
        abort("--summary takes 'farms'", code=2)
    if columns not in ("farmer", "full"):
        abort("--columns takes 'farmer' or 'full'", code=2)
    filters = _filters(period, farm, node, address, receipt)
    cli = get_context(ctx)
    header = {
        "format": EXPORT_FORMAT,
        "generated_at": iso_utc(utcnow()),
        "code_version": CODE_VERSION,
        "network": cli.settings.network,
        "filters": filters.document(),
    }
    try:
        with cli.session() as session, _Output(out) as stream:
            if summary == "farms":
                rows = farm_summaries(session, filters)
                if fmt == "csv":
                    count = write_csv(rows, stream, SUMMARY_FIELDS)
                else:
                    count = write_export(fmt, {**header, "summary": "farms"}, [], rows, stream)
            elif fmt == "csv":
                fields = FARMER_FIELDS if columns == "farmer" else FIELDS
                count = write_csv(iter_entries(session, filters), stream, fields)
            else:
                runs = runs_document(session, filters)
                if filters.period_offset is not None:  # the period's statement (ledger side)
                    from payouts.runs.statement import period_statement

                    header["statement"] = period_statement(session, filters.period_offset).document()
                count = write_export(fmt, header, runs, iter_entries(session, filters), stream)
            statement_file = _write_statement(session, filters.period_offset, out) if summary is None else None
    except OSError as exc:
        abort(f"cannot write the export to {out or 'stdout'}: {exc.strerror or exc}")
    what = "farm summaries" if summary else "entries"
    err_console.print(f"exported {count:,} {what}" + (f" to {out}" if out else ""))
    if statement_file is not None:
        err_console.print(f"the period's statement: {statement_file}")


def _write_statement(session, period_offset: int | None, out: Path | None) -> Path | None:
    """`statement-<period>.json` beside the export file, for a one-period export to a file."""
    from payouts.runs.statement import period_statement

    if period_offset is None or out is None:
        return None
    document = period_statement(session, period_offset).document()
    if not document["run_ids"]:
        return None
    target = out.with_name(f"statement-{Period(period_offset).label}.json")
    write_atomic(target, json.dumps(document, indent=2) + "\n")
    return target


def status(
    ctx: typer.Context,
    node: Annotated[int | None, typer.Option(help="A node id.")] = None,
    farm: Annotated[int | None, typer.Option(help="A farm id.")] = None,
    address: Annotated[list[str] | None, typer.Option(help="A payout address (repeatable).")] = None,
    receipt: Annotated[str | None, typer.Option(help="A receipt or memo hash.")] = None,
    period: Annotated[str | None, typer.Option(help="Only this period (2025-11 or an offset).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
) -> None:
    """A farmer's payouts per period: eligible or not and why, reward, state, transaction and
    date; a period not paid yet says so and why."""
    from payouts.export.status import status_rows

    if sum(x is not None for x in (node, farm, receipt)) + bool(address) != 1:
        abort("give exactly one of --node, --farm, --address or --receipt", code=2)
    filters = _filters(period, farm, node, address, receipt)
    cli = get_context(ctx)
    with cli.session() as session:
        rows = list(status_rows(session, filters))
    query = {k: v for k, v in filters.document().items() if v not in (None, [])}
    if as_json:
        print_json({"query": query, "entries": rows})
        if not rows:
            raise typer.Exit(1)
        return
    if not rows:
        abort(f"nothing in the ledger for {_describe(query)}")
    _print_status(query, rows)


def _describe(query: dict) -> str:
    return ", ".join(
        f"{key.replace('_id', '')} {', '.join(value) if isinstance(value, list) else value}"
        for key, value in query.items()
    )


#: the colour of an entry's status in the status table (any other: yellow)
_STATUS_STYLE = {EntryStatus.PAID: "green", EntryStatus.HELD: "red", EntryStatus.FAILED: "red"}


def _print_status(query: dict, rows: list[dict]) -> None:
    from rich.table import Table
    from rich.text import Text

    farms = {(r["farm_id"], r["farm_name"]) for r in rows}
    title = Text(f"Payouts for {_describe(query)}")
    if len(farms) == 1:
        farm_id, farm_name = next(iter(farms))
        title.append(f" — farm {farm_id} ")
        title.append(repr(farm_name))
    table = Table(title=title, title_justify="left", show_lines=True)
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("period", "left"),
        ("node", "right"),
        ("uptime", "right"),
        ("eligibility", "left"),
        ("TFT", "right"),
        ("state", "left"),
        ("transaction", "left"),
        ("paid at (UTC)", "left"),
    )
    for column, justify in columns:
        table.add_column(column, justify=justify)
    paid_units = owed_units = claimable_units = 0
    for r in rows:
        eligibility = Text("eligible" if r["eligible"] else eligibility_status(r["eligibility"]))
        eligibility.append("\n" + r["why"], style="dim")
        state = Text(r["status"], style=_STATUS_STYLE.get(r["status"], "yellow"))
        if r["note"]:
            state.append("\n" + r["note"], style="dim")
        if r["what_to_fix"]:
            state.append("\nto fix: " + r["what_to_fix"])
        kind = "" if r["entry_kind"] == "receipt" else f"\n{r['entry_kind']}"
        amount = r["amount_tft"] if r["amount_tft_units"] else r["reward_tft"]
        if r["status"] == EntryStatus.PAID:
            paid_units += r["amount_tft_units"]
        if r["status"] == EntryStatus.CLAIMABLE:
            claimable_units += r["amount_tft_units"]
        owed_units += r["owed_tft_units"]  # each owed receipt once (a retried entry owes nothing)
        table.add_row(
            Text(r["period"] + kind),
            str(r["node_id"]),
            f"{r['uptime_percent']} %",
            eligibility,
            amount,
            state,
            Text(r["stellar_tx_hash"] or "—"),
            (r["paid_at"] or "—").replace("T", " ").replace("Z", ""),
        )
    out_console.print(table)
    out_console.print(f"paid {format_tft(paid_units)} TFT; not paid yet {format_tft(owed_units)} TFT")
    if claimable_units:
        out_console.print(f"sent as claimable balances, waiting to be claimed: {format_tft(claimable_units)} TFT")


def publish(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the static site.")],
) -> None:
    """Write the farmers' status page: a static site with JSON shards, hostable anywhere."""
    from payouts.wiring import publish_status_site

    cli = get_context(ctx)
    try:
        with cli.session() as session:
            report = publish_status_site(cli.settings, session, out)
    except OSError as exc:
        abort(f"cannot publish the site to {out}: {exc.strerror or exc}")
    err_console.print(f"published {report.entries:,} entries ({report.nodes:,} nodes, {report.farms:,} farms) to {out}")


def web(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free one).")] = 8080,
    site: Annotated[
        Path | None,
        typer.Option(
            help="Published site folder (payouts publish --out); default: the monthly job's, under the export dir."
        ),
    ] = None,
) -> None:
    """Serve the published site and read-only exports (/export.json, /export.csv)."""
    from payouts.export.server import serve
    from payouts.wiring import export_dir

    cli = get_context(ctx)
    # the monthly job publishes each exported period's site here
    site_dir = site if site is not None else export_dir(cli.settings) / "site"
    err_console.print(f"serving on http://{host}:{port} (site: {site_dir}); Ctrl-C stops")
    try:
        serve(cli.settings.ledger_url(), host, port, site_dir, network=cli.settings.network)
    except OSError as exc:  # the address is taken, not this machine's, or not an address
        abort(f"cannot listen on {host}:{port}: {exc.strerror or exc}", code=2)


def correct(
    ctx: typer.Context,
    receipt_hash: Annotated[
        str, typer.Argument(metavar="RECEIPT_HASH", help="The receipt (or retry receipt) to correct.")
    ],
    amount: Annotated[str, typer.Option(help="TFT owed on top of the receipt, e.g. 12.5 (at most 7 decimals).")],
    reason: Annotated[str, typer.Option(help="Why, in words the farmer will read.")],
    again: Annotated[
        bool, typer.Option("--again", help="Record another correction of a receipt that was corrected before.")
    ] = False,
    by: Annotated[str | None, typer.Option(help="Who asks for it, on record (default: the login name).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the correction as JSON.")] = False,
) -> None:
    """Record a correction entry; it never edits history and joins the next run to be paid.

    A receipt is corrected once: a second correction of it is refused, naming the one already
    recorded, unless --again is given (see `payouts corrections`)."""
    from payouts.export.corrections import CorrectionError, parse_correction_amount, record_correction

    cli = get_context(ctx)
    try:
        units = parse_correction_amount(amount, cap_tft_units=cli.settings.cap_node_tft_units)
        with cli.session() as session:
            correction = record_correction(
                session, receipt_hash, units, reason, again=again, recorded_by=by if by is not None else _login()
            )
    except CorrectionError as exc:
        abort(str(exc), code=2)
    document = {
        "payment_id": correction.payment_id,
        "receipt_hash": correction.receipt_hash,
        "correction_hash": correction.correction_hash,
        "amount_tft_units": correction.amount_tft_units,
        "amount_tft": format_tft(correction.amount_tft_units),
        "corrects_payment_id": correction.corrects_payment_id,
        "idempotency_key": correction.idempotency_key,
    }
    if as_json:
        print_json(document)
        return
    err_console.print(
        f"recorded correction {correction.idempotency_key}: {document['amount_tft']} TFT "
        f"(payment {correction.payment_id}); it joins the next run"
    )


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container): nobody to name
        return ""


def corrections(
    ctx: typer.Context,
    receipt: Annotated[str | None, typer.Option(help="Only the corrections of this receipt (or retry) hash.")] = None,
    farm: Annotated[int | None, typer.Option(help="Only this farm id.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON to stdout.")] = False,
) -> None:
    """List the recorded corrections: when, by whom, why, how much, and where each stands
    (waiting for the next run, in a run, held, paid)."""
    from typing import Any

    from rich.table import Table

    from payouts.export.corrections import list_corrections
    from payouts.export.rows import iso_utc

    cli = get_context(ctx)
    with cli.session() as session:
        entries = list_corrections(session, receipt_hash=receipt.strip() if receipt else None, farm_id=farm)
    rows: list[dict[str, Any]] = [
        {
            "payment_id": e.payment_id,
            "recorded_at": iso_utc(e.recorded_at),
            "recorded_by": e.recorded_by,
            "reason": e.reason,
            "corrects_receipt_hash": e.corrects_receipt_hash,
            "node_id": e.node_id,
            "farm_id": e.farm_id,
            "amount_tft_units": e.amount_tft_units,
            "amount_tft": format_tft(e.amount_tft_units),
            "correction_hash": e.correction_hash,
            "status": e.status,
            "state": e.state,
            "run_id": e.run_id,
            "period": Period(e.period_offset).label,
            "stellar_tx_hash": e.tx_hash,
            "paid_at": iso_utc(e.paid_at),
        }
        for e in entries
    ]
    if as_json:
        print_json(rows)
        return
    if not rows:
        err_console.print("no corrections recorded")
        return
    total = sum(r["amount_tft_units"] for r in rows)
    table = Table(title=f"Corrections ({len(rows)}, {format_tft(total)} TFT)", title_justify="left")
    for column in ("recorded (UTC)", "by", "receipt", "node", "farm", "TFT", "reason", "state"):
        table.add_column(column, justify="right" if column in ("node", "farm", "TFT") else "left")
    for r in rows:
        table.add_row(
            (r["recorded_at"] or "").replace("T", " ").replace("Z", "")[:16],
            r["recorded_by"] or "—",
            r["corrects_receipt_hash"][:12] + "…",
            str(r["node_id"]),
            str(r["farm_id"]),
            r["amount_tft"],
            r["reason"],
            r["state"],
        )
    out_console.print(table)


@farms_app.command("import")
def farms_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV with farm_id, contact_confirmed_at, sla_accepted_at.")],
) -> None:
    """Import the farms' sign-on to the revenue model (contact confirmed, SLA accepted)."""
    from payouts.export.signons import SignonFileError, import_signons

    cli = get_context(ctx)
    try:
        with cli.session() as session:
            report = import_signons(session, file)
    except SignonFileError as exc:
        abort(str(exc), code=2)
    err_console.print(f"farms: {report.added} added, {report.updated} updated, {report.unchanged} unchanged")


@nodes_app.command("import")
def nodes_import(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="CSV with node_id, v3_opted_out_at, v4_account.")],
) -> None:
    """Import nodes' move to the revenue model: the v3 opt-out time (no proof-of-capacity payout
    from the period that holds it) and the v4 account."""
    from payouts.export.signons import SignonFileError, import_node_transitions

    cli = get_context(ctx)
    try:
        with cli.session() as session:
            report = import_node_transitions(session, file)
    except SignonFileError as exc:
        abort(str(exc), code=2)
    err_console.print(f"nodes: {report.added} added, {report.updated} updated, {report.unchanged} unchanged")
