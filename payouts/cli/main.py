"""The `payouts` command: treasury operators drive runs from here."""

from __future__ import annotations

from typing import Annotated

import typer

from config.logging import configure_logging
from config.settings import SettingsError, load_settings
from payouts import CODE_VERSION
from payouts.cli import approve, db, demo, export, funding, operate, pay, receipt, run, sandbox, snapshot
from payouts.cli.console import abort
from payouts.cli.context import CliContext

app = typer.Typer(
    name="payouts",
    help=(
        "Monthly TFT payouts to ThreeFold farmers: calculate proof-of-capacity receipts "
        "exactly as minting did, review and approve them, pay them once on Stellar."
    ),
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
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
    try:
        settings = load_settings()
    except SettingsError as exc:
        abort(str(exc), code=2)
    configure_logging(log_format or settings.log_format, "DEBUG" if verbose else settings.log_level)
    ctx.obj = CliContext(settings=settings)


app.command("run")(operate.run)
app.command("calculate")(run.calculate)
app.command("runs")(run.runs)
app.command("show")(run.show)
app.command("approve")(approve.approve)
app.command("reject")(approve.reject)
app.command("pay")(pay.pay)
app.command("reconcile")(pay.reconcile)
app.command("held")(pay.held)
app.command("pause")(operate.pause)
app.command("resume")(operate.resume)
app.command("continue")(operate.continue_)
app.command("synth")(snapshot.synth)
app.command("snapshot")(snapshot.snapshot)
app.command("demo")(demo.demo)
app.add_typer(funding.app, name="funding")
app.add_typer(receipt.app, name="receipt")
app.add_typer(db.app, name="db")
app.add_typer(sandbox.app, name="sandbox")
app.command("export")(export.export)
app.command("status")(export.status)
app.command("publish")(export.publish)
app.command("web")(export.web)
app.command("correct")(export.correct)
app.add_typer(export.farms_app, name="farms")
app.add_typer(export.nodes_app, name="nodes")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
