"""Terminal output for operators: status to stderr, data to stdout, `--json` for scripts.

The consoles are made on first use: importing this module loads no rich, so a command's
`--help` prints at once.
"""

from __future__ import annotations

import json
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn, cast

import orjson
import typer

from payouts.redact import redact

if TYPE_CHECKING:
    from rich.console import Console


class _LazyConsole:
    """A rich Console made when first used (its options given now)."""

    _options: dict[str, Any]
    _console: Console | None

    def __init__(self, **options: Any) -> None:
        object.__setattr__(self, "_options", options)
        object.__setattr__(self, "_console", None)

    def _real(self) -> Console:
        if self._console is None:
            from rich.console import Console

            object.__setattr__(self, "_console", Console(**self._options))
        return cast("Console", self._console)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._real(), name, value)

    def __enter__(self) -> Console:
        return self._real().__enter__()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._real().__exit__(kind, error, traceback)


#: Human status, progress bars and tables that are not the command's data.
err_console = cast("Console", _LazyConsole(stderr=True, highlight=False))
#: The command's data (tables, JSON).
out_console = cast("Console", _LazyConsole(highlight=False))


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
