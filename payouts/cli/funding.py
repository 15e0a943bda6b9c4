"""Two-tier funding commands: export the funding transaction, sign it offline, submit it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from payouts.cli.console import abort, err_console, out_console
from payouts.cli.context import get_context
from payouts.cli.rehearsal import trigger_line
from payouts.periods import Period

app = typer.Typer(
    help="Two-tier funding: the treasury funds the payout account with exactly a run's total.", no_args_is_help=True
)


@app.command("export")
def export(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="An approved run.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Funding file to write (no secrets in it).")],
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite a file that holds collected signatures (they are lost).")
    ] = False,
) -> None:
    """Write the run's funding transaction (treasury -> payout account, the approved total,
    valid for 7 days) for the treasury signers, with the treasury's signers and thresholds as
    the chain has them. Exporting again gives the same transaction; a file that already holds
    signatures is kept unless --force."""
    from payouts.runs.errors import RunsError
    from payouts.runs.funding import adopt_funding, export_funding
    from payouts.runs.service import require_run
    from payouts.stellar.horizon import StellarError
    from payouts.stellar.keys import KeyFileError
    from payouts.wiring import horizon, pay_config, signing_keys

    cli = get_context(ctx)
    settings = cli.settings
    if not settings.treasury_account:
        abort("set PAYOUTS_TREASURY_ACCOUNT to the treasury's public key", code=2)
    if out.exists() and not force:
        _refuse_overwrite(out)
    try:
        keys = signing_keys(settings)
        with cli.session() as session, horizon(settings) as client:
            run = require_run(session, run_id)
            config = pay_config(settings, run.network)
            # a restored ledger must not fund a run twice: the chain's funding payment is adopted
            adopted = adopt_funding(
                session,
                run,
                client,
                treasury=settings.treasury_account,
                payout_account=keys.payout_account,
                asset_code=config.asset_code,
                asset_issuer=config.asset_issuer,
                approvers=list(config.approvers),
                required=config.approvals_required,
            )
            if adopted is not None:
                err_console.print(adopted)
                return
            funding = export_funding(
                session,
                run,
                client,
                treasury=settings.treasury_account,
                payout_account=keys.payout_account,
                asset_code=config.asset_code,
                asset_issuer=config.asset_issuer,
                network_passphrase=config.network_passphrase,
                approvers=list(config.approvers),
                required=config.approvals_required,
                ledger_close_s=config.ledger_close_s,
            )
    except (RunsError, StellarError, KeyFileError, ValueError) as exc:
        abort(str(exc))
    funding.write(out)
    for line in funding.describe():
        out_console.print(line)
    err_console.print(f"wrote {out}; have the treasury signers run: payouts funding sign {out} --key-file KEY")


def _refuse_overwrite(out: Path) -> None:
    """A file already there is overwritten only when it holds no signatures."""
    from payouts.runs.errors import RunsError
    from payouts.runs.funding import FundingFile

    try:
        existing = FundingFile.read(out)
    except RunsError as exc:
        abort(f"{out} exists and is not a funding file to replace ({exc}); choose another --out or pass --force")
    signatures = len(existing.envelope().signatures)
    if signatures:
        signed = existing.signed_by()
        abort(
            f"{out} holds {signatures} collected signature(s)"
            + (f" (by {', '.join(signed)})" if signed else "")
            + "; submit it (payouts funding submit), or pass --force to overwrite it and lose them"
        )


@app.command("sign")
def sign(
    file: Annotated[Path, typer.Argument(help="The funding file.")],
    key_file: Annotated[Path, typer.Option("--key-file", "-k", help="A treasury signer's secret seed (mode 600).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Sign without asking (after showing it).")] = False,
) -> None:
    """Show what the funding transaction does, then add this key's signature to the file.
    Works offline: nothing is sent."""
    from payouts.runs.errors import RunsError
    from payouts.runs.funding import AlreadySigned, FundingFile, sign_funding
    from payouts.stellar.keys import KeyFileError, load_keypair

    try:
        funding = FundingFile.read(file)
        keypair = load_keypair(key_file)
    except (RunsError, KeyFileError) as exc:
        abort(str(exc), code=2)
    for line in funding.describe():
        out_console.print(line)
    out_console.print(f"signing as {keypair.public_key}")
    try:
        signed = sign_funding(funding, keypair)  # checked before asking: nothing is written yet
    except AlreadySigned as exc:
        err_console.print(str(exc))
        return
    except RunsError as exc:
        abort(str(exc), code=2)
    if not yes and not typer.confirm("Sign this funding transaction?", err=True):
        abort("not signed")
    signed.write(file)
    weight = sum(signed.signer_keys[key] for key in signed.signed_by())
    err_console.print(
        f"signature added to {file}; signatures weigh {weight} of the {signed.needed_weight} the treasury needs"
    )


@app.command("submit")
def submit(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="The signed funding file.")],
) -> None:
    """Submit the funding transaction once its signatures meet the treasury's threshold.
    Safe to repeat: an unknown outcome is looked up by hash before anything else."""
    from payouts.runs.errors import RunsError
    from payouts.runs.funding import FundingFile, submit_funding
    from payouts.runs.service import require_run
    from payouts.stellar.horizon import StellarError
    from payouts.wiring import horizon

    cli = get_context(ctx)
    try:
        funding = FundingFile.read(file)
        with horizon(cli.settings) as client:
            status = submit_funding(cli.units(), funding, client)
    except (RunsError, StellarError) as exc:
        abort(str(exc))
    err_console.print(f"run {funding.run_id}: {status}")
    with cli.session() as session:
        run = require_run(session, funding.run_id)
        period = Period(run.period_offset).label
    settings = cli.settings
    err_console.print(
        f"the run is paid when the monthly job next runs; "
        f"{trigger_line(settings.schedule_cron, settings.schedule_every_s, period)}"
    )
