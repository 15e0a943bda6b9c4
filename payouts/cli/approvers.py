"""The approver set recorded in the ledger: show it, and sign a change to it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from payouts.cli.console import abort, err_console, out_console
from payouts.cli.context import get_context

app = typer.Typer(
    help="The approver set recorded in the ledger: a change takes effect once signed by the set before it.",
    no_args_is_help=True,
)


@app.command("show")
def show(ctx: typer.Context) -> None:
    """Show the approvers in effect, and a configured change waiting for signatures."""
    from payouts.runs.approvals import approvers_in_effect, required_approvals

    cli = get_context(ctx)
    settings = cli.settings
    required = required_approvals(settings.network, settings.approvals_required)
    with cli.session() as session:
        state = approvers_in_effect(session, settings.approvers, required)
        effective = list(state.effective_members())
        threshold = state.effective.threshold if state.effective is not None else required
        notice = state.notice(settings.approvers, required)
    out_console.print(f"approver set in effect: {threshold} of {len(effective)} required")
    for key in effective:
        out_console.print(f"  {key}")
    if notice:
        err_console.print(notice)


@app.command("sign")
def sign(
    ctx: typer.Context,
    key_file: Annotated[
        Path, typer.Option("--key-file", "-k", help="File with a current approver's secret seed (mode 600).")
    ],
) -> None:
    """Sign the configured approver set (PAYOUTS_APPROVERS, PAYOUTS_APPROVALS_REQUIRED) as the
    successor of the set in effect; it takes effect once enough current approvers signed."""
    from payouts.runs.approvals import ApproverSetError, required_approvals, sign_approver_change
    from payouts.stellar.keys import KeyFileError, load_keypair

    cli = get_context(ctx)
    settings = cli.settings
    try:
        keypair = load_keypair(key_file)
    except KeyFileError as exc:
        abort(str(exc), code=2)
    required = required_approvals(settings.network, settings.approvals_required)
    with cli.session() as session:
        try:
            state = sign_approver_change(session, keypair, settings.approvers, required)
        except ApproverSetError as exc:
            abort(str(exc))
        adopted = state.pending is None
        signed, needed = state.pending_signatures, state.threshold
    if adopted:
        err_console.print("the configured approver set is now in effect")
    else:
        err_console.print(f"signed: {signed} of the {needed} signatures the change needs")
