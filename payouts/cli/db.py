"""Ledger database commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from payouts.cli.console import abort, err_console
from payouts.cli.context import get_context
from payouts.ledger.db import BackupError, backup, is_current, make_engine, migrate

app = typer.Typer(help="Ledger database: migrations, status and backups.", no_args_is_help=True)


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


@app.command("backup")
def backup_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="New file to write (never overwritten), mode 600.")],
) -> None:
    """Take a consistent backup of the ledger while workers run (SQLite: a database file;
    PostgreSQL: a pg_dump custom-format file for pg_restore). See RUNBOOK.md to restore."""
    settings = get_context(ctx).settings
    try:
        path = backup(settings.ledger_url(), out)
    except (BackupError, OSError) as exc:
        abort(f"backup of {settings.ledger_url_for_display()} failed: {exc}")
    err_console.print(
        f"ledger at {settings.ledger_url_for_display()} backed up to {path} ({path.stat().st_size:,} bytes)"
    )
