"""Ledger database commands."""

from __future__ import annotations

import typer

from payouts.cli.console import err_console
from payouts.cli.context import get_context
from payouts.ledger.db import is_current, make_engine, migrate

app = typer.Typer(help="Ledger database: migrations and status.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(ctx: typer.Context) -> None:
    """Apply every pending migration to the ledger (safe to run again)."""
    settings = get_context(ctx).settings
    engine = make_engine(settings.ledger_url())
    migrate(engine)
    err_console.print(f"ledger at {settings.ledger_url_for_display()} is up to date")


@app.command("status")
def status(ctx: typer.Context) -> None:
    """Say whether the ledger schema is at the newest migration."""
    settings = get_context(ctx).settings
    current = is_current(make_engine(settings.ledger_url()))
    where = settings.ledger_url_for_display()
    err_console.print(f"ledger at {where} is {'up to date' if current else 'behind: run `payouts db upgrade`'}")
    raise typer.Exit(0 if current else 1)
