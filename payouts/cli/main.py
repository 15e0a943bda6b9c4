"""The `payouts` command: treasury operators drive runs from here.

Commands are imported when used (payouts/cli/lazy.py): `payouts --help` and a command's
`--help` load neither the ledger nor Stellar, Celery or HTTP libraries.
"""

from __future__ import annotations

from typing import Annotated

import typer

from payouts.cli.failures import open_root, run_app
from payouts.cli.lazy import LazyGroup

app = typer.Typer(
    name="payouts",
    cls=LazyGroup,
    help=(
        "Monthly TFT payouts to ThreeFold farmers: calculate proof-of-capacity receipts "
        "exactly as minting did, review and approve them, pay them once on Stellar."
    ),
    epilog="Example:\n\n\b\n  payouts runs\n  payouts run --period 2025-11",
    # plain help (click's formatter): `payouts --help` prints without loading rich's renderer
    rich_markup_mode=None,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from payouts import CODE_VERSION

        typer.echo(CODE_VERSION)
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    log_format: Annotated[
        str | None,
        typer.Option(help="Log lines as 'console' or 'json' (default: console in a terminal)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug log lines.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    open_root(ctx, log_format, verbose)


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()
