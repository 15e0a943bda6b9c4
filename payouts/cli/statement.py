"""`payouts statement`: a period's money in and out, balanced to the unit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from payouts.cli.console import abort, err_console, out_console, print_json
from payouts.cli.context import get_context
from payouts.money import format_tft
from payouts.periods import PeriodError, resolve_period

if TYPE_CHECKING:  # the ledger, Horizon and rich load when the command runs, not for its --help
    from rich.table import Table

    from payouts.runs.statement import Statement


def statement(
    ctx: typer.Context,
    period: Annotated[str, typer.Option(help="Month label, e.g. 2025-11.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the statement as JSON.")] = False,
    chain: Annotated[
        bool, typer.Option("--chain/--no-chain", help="Read the payout account's change and fees from the chain.")
    ] = True,
) -> None:
    """A period's statement: owed carried in, new receipts, retries, corrections, paid, held
    carried forward, funding received, swept back and XLM fees, in integer units.

    Two identities must hold to the unit (and each retry must equal what it retries), or the
    command exits 1 naming the difference:

      owed_in + new + retries + corrections - paid - held_out = 0

    where owed_in is what earlier periods still owed at the period's start less the entries this
    period's runs retried or corrected (those are owed once, as the retries and corrections),
    and held_out is every entry still unpaid and not retried at the period's end; and

      funding_in - paid - swept_back = the payout account's TFT change from the period's
      transactions (read from the chain; --no-chain skips this side).
    """
    from payouts.runs.statement import period_statement
    from payouts.stellar.horizon import StellarError
    from payouts.wiring import horizon

    cli = get_context(ctx)
    try:
        month = resolve_period(period, None)
    except PeriodError as exc:
        abort(str(exc), code=2)
    with cli.session() as session:
        try:
            if chain:
                with horizon(cli.settings) as client:
                    result = period_statement(session, month.offset, client)
            else:
                result = period_statement(session, month.offset)
        except StellarError as exc:
            abort(f"{exc} (--no-chain gives the ledger side only)")
    if not result.run_ids:
        abort(f"no run for period {month}")
    if as_json:
        print_json(result.document())
    else:
        out_console.print(_table(result))
    if not result.balances:
        problems = []
        if result.owed_difference_units:
            problems.append(
                f"owed side off by {result.owed_difference_units} units ({format_tft(result.owed_difference_units)} TFT)"
            )
        if result.tft_difference_units:
            problems.append(
                f"TFT side off by {result.tft_difference_units} units ({format_tft(result.tft_difference_units)} TFT)"
            )
        if result.retries_mismatch_units:
            problems.append(f"retries differ from what they retry by {result.retries_mismatch_units} units")
        abort(f"the statement of {month} does not balance: " + "; ".join(problems))
    err_console.print(f"the statement of {month} balances")


def _table(s: Statement) -> Table:
    from rich.table import Table

    table = Table(title=f"Statement {s.period} (runs {', '.join(map(str, s.run_ids))})")
    table.add_column("")
    table.add_column("TFT", justify="right")
    table.add_column("units", justify="right")
    rows: list[tuple[str, int | None]] = [
        ("owed carried in", s.owed_carried_in_units),
        ("  of it retried or corrected here", -s.paid_again_units),
        ("owed in (not paid again here)", s.owed_in_units),
        ("+ new receipts", s.new_units),
        ("+ retries", s.retries_units),
        ("+ corrections", s.corrections_units),
        ("- paid", -s.paid_units),
        ("- held carried forward", -s.held_out_units),
        ("= difference (must be 0)", s.owed_difference_units),
        ("funding received", s.funding_in_units),
        ("- paid", -s.paid_units),
        ("- swept back", -s.swept_back_units),
        ("payout account change (chain)", s.payout_change_units),
        ("= difference (must be 0)", s.tft_difference_units),
    ]
    for label, value in rows:
        table.add_row(label, "-" if value is None else format_tft(value), "-" if value is None else str(value))
    table.add_row("XLM fees (stroops)", "", "-" if s.fees_stroops is None else str(s.fees_stroops))
    return table
