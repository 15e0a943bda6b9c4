"""Terminal output for operators: status to stderr, data to stdout, `--json` for scripts."""

from __future__ import annotations

import json
from typing import NoReturn

import orjson
import typer
from rich.console import Console

from payouts.redact import redact

#: Human status, progress bars and tables that are not the command's data.
err_console = Console(stderr=True, highlight=False)
#: The command's data (tables, JSON).
out_console = Console(highlight=False)


def abort(message: str, code: int = 1) -> NoReturn:
    """Print a clear error for the operator and exit non-zero (a seed-shaped value never shows)."""
    err_console.print("[bold red]error:[/] ", markup=True, end="")
    err_console.print(redact(message), markup=False, soft_wrap=True)
    raise typer.Exit(code)


def print_json(document: object) -> None:
    """One JSON document on stdout (sorted keys off: documents keep their declared order)."""
    try:
        text = orjson.dumps(document, option=orjson.OPT_INDENT_2).decode()
    except TypeError:  # an integer past 64 bits (a total of u64 rewards): the standard library is exact
        text = json.dumps(document, indent=2, ensure_ascii=False)
    typer.echo(text)
