"""Receipt commands: print a recorded receipt, verify a receipt file's hash."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer._click import Context as ClickContext  # typer ships its own click; its commands get this
from typer.core import TyperGroup

from payouts.calculation.receipts import canonical_bytes_from_json, receipt_hash
from payouts.cli.console import abort, err_console
from payouts.cli.context import get_context


class _HashOrCommand(TyperGroup):
    """`payouts receipt HASH` shows a receipt; `payouts receipt verify FILE` checks one."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_HashOrCommand,
    help="Receipts: `payouts receipt HASH` prints the canonical receipt JSON; "
    "`payouts receipt verify FILE` recomputes a receipt file's hash.",
    no_args_is_help=True,
)


@app.command("show", hidden=True)
def show(
    ctx: typer.Context,
    receipt_hash_hex: Annotated[str, typer.Argument(metavar="HASH", help="Receipt hash (64 hex digits).")],
) -> None:
    """Print the canonical receipt JSON (the exact bytes that were hashed)."""
    from payouts.ledger import repository

    with get_context(ctx).session() as session:
        found = repository.receipts_by_hash(session, receipt_hash_hex.strip())
    if not found:
        abort(f"no receipt with hash {receipt_hash_hex!r} in the ledger")
    typer.echo(found[0].receipt_bytes.decode("utf-8"))


@app.command("verify")
def verify(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="A receipt JSON file, e.g. one of minting's receipts.")],
    expect: Annotated[
        str | None, typer.Option("--expect", help="The hash the receipt should have (e.g. a memo).")
    ] = None,
) -> None:
    """Recompute the BLAKE2b-256 hash of a receipt file and say whether it matches.

    It compares with --expect when given, else with a file name that is a hash, and looks the
    hash up in the ledger. Exit 0 when it matches, 1 when it does not.
    """
    from payouts.ledger import repository

    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        abort(f"{file}: cannot be read: {exc}", code=2)
    try:
        canonical = canonical_bytes_from_json(text)
    except ValueError as exc:
        abort(f"{file}: not a receipt: {exc}", code=2)
    computed = receipt_hash(canonical)
    typer.echo(computed)
    expected = expect or (file.stem.lower() if len(file.stem) == 64 else None)
    with get_context(ctx).session() as session:
        in_ledger = repository.receipts_by_hash(session, computed)
    if in_ledger:
        first = in_ledger[0]
        err_console.print(f"found in the ledger: run {first.run_id}, node {first.node_id}, farm {first.farm_id}")
    if expected is not None:
        if expected.lower() != computed:
            err_console.print(f"[bold red]does not match[/] the expected hash {expected}")
            raise typer.Exit(1)
        err_console.print("[green]matches[/] the expected hash")
    elif not in_ledger:
        err_console.print("no receipt with this hash in the ledger")
        raise typer.Exit(1)
