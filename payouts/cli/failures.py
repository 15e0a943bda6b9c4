"""The command line's last word on an expected failure: a short message and a non-zero exit."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from payouts.cli import errors

if TYPE_CHECKING:
    import typer

    from config.settings import Settings

#: options that print help and exit: such a run needs no settings
_HELP = {"--help", "-h"}

#: exit codes: 1 a failure of the world (unreachable service), 2 a bad setting or input
EXIT_UNAVAILABLE = 1
EXIT_BAD_INPUT = 2


def remember(command: str | None, settings: Settings) -> None:
    """Keep what an error message needs to say where (URLs masked) once the command failed."""
    errors.current.command = command
    errors.current.horizon_url = settings.horizon_url
    errors.current.broker_url = errors.mask_url(settings.broker_url.get_secret_value())
    try:
        errors.current.ledger_url = settings.ledger_url_for_display()
    except Exception:  # noqa: BLE001 - an unparseable URL is reported when the ledger is opened
        errors.current.ledger_url = "PAYOUTS_DATABASE_URL"


def _exit_code(error: BaseException) -> int:
    names = {cls.__name__ for cls in type(error).__mro__}
    return EXIT_BAD_INPUT if names & {"ValidationError", "KeyFileError", "ArgumentError"} else EXIT_UNAVAILABLE


def fail(error: BaseException) -> NoReturn:
    """Print the operator's message for `error` and exit; re-raise a bug with its traceback."""
    message = errors.describe(error)
    if message is None:
        raise error
    first, *rest = message.split("\n", 1)
    sys.stderr.write(f"error: {first}\n")
    if rest:
        sys.stderr.write(f"{rest[0]}\n")
    sys.stderr.flush()
    raise SystemExit(_exit_code(error))


def run_app(app: Callable[[], object]) -> None:
    try:
        app()
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - described when expected, re-raised otherwise
        fail(exc)


def open_root(ctx: typer.Context, log_format: str | None, verbose: bool) -> None:
    """Read the settings, configure logging and keep the command's context (skipped for --help)."""
    from payouts.cli.lazy import ARGS_KEY

    if _HELP & set(ctx.meta.get(ARGS_KEY, [])):
        return
    from config.logging import configure_logging
    from config.settings import SettingsError, load_settings
    from payouts.cli.context import CliContext

    try:
        settings = load_settings()
    except SettingsError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(EXIT_BAD_INPUT) from None
    remember(ctx.invoked_subcommand, settings)
    configure_logging(log_format or settings.log_format, "DEBUG" if verbose else settings.log_level)
    # an embedding program (or a test) may hand in the clock that judges whether a period's
    # inputs are complete, as the context object; otherwise the chain's time is used
    clock = ctx.obj if ctx.obj is not None and callable(getattr(ctx.obj, "now", None)) else None
    ctx.obj = CliContext(settings=settings, clock=clock)
