"""The `payouts` command: treasury operators drive runs from here.

Commands are imported when used (payouts/cli/lazy.py): `payouts --help` and a command's
`--help` load neither the ledger nor Stellar, Celery or HTTP libraries.
"""

from __future__ import annotations

import re
from typing import Annotated

import typer
from typer._click import Context as ClickContext  # typer ships its own click; its commands get this
from typer._click import exceptions as click_errors

from payouts.cli.failures import open_root, run_app
from payouts.cli.lazy import LazyGroup
from payouts.redact import has_seed, redact

#: ids and counts are the ledger's 64-bit signed integers; a larger one would crash its driver
_LEDGER_INT_MAX = 2**63 - 1
_INTEGER = re.compile(r"[-+]?[0-9]{1,4000}", re.ASCII)


class SeedSafeGroup(LazyGroup):
    """The root command: an argument shaped like a secret seed is refused before anything runs
    (without repeating it), and no error a command raises shows one."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        for position, arg in enumerate(args, start=1):
            if has_seed(arg):
                raise click_errors.UsageError(
                    f"argument {position} is shaped like a Stellar secret seed (S...); seeds are read "
                    "from key files only (--key-file PATH), never given on the command line. Treat "
                    "this seed as exposed (shell history, process list) and rotate it.",
                    ctx,
                )
            try:
                arg.encode("utf-8")
            except UnicodeEncodeError as exc:  # bytes the locale could not decode (surrogateescape)
                raise click_errors.UsageError(
                    f"argument {position} is not valid UTF-8 text (at character {exc.start + 1}); nothing was done",
                    ctx,
                ) from None
            if _INTEGER.fullmatch(arg) and abs(int(arg)) > _LEDGER_INT_MAX:
                raise click_errors.UsageError(
                    f"argument {position} is {arg}, past {_LEDGER_INT_MAX:,}, the largest number the "
                    "ledger holds; nothing was done",
                    ctx,
                )
        return super().parse_args(ctx, args)

    def invoke(self, ctx: ClickContext):
        try:
            return super().invoke(ctx)
        except click_errors.ClickException as exc:
            exc.message = redact(exc.message)
            raise
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if has_seed(str(exc)):  # never a traceback that quotes a seed
                from payouts.cli.console import abort

                abort(redact(f"{type(exc).__name__}: {exc}"))
            raise


app = typer.Typer(
    name="payouts",
    cls=SeedSafeGroup,
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
