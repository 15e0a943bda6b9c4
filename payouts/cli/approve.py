"""Approval commands: sign a run's manifest, or reject the run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from payouts.cli.console import abort, err_console, out_console
from payouts.cli.context import get_context


def approve(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="Run id (see `payouts runs`).")],
    key_file: Annotated[
        Path, typer.Option("--key-file", "-k", help="File with the approver's secret seed (mode 600).")
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Sign without asking (after showing the review).")] = False,
    accept_exceedance: Annotated[
        str | None,
        typer.Option(
            "--accept-exceedance",
            help="Why the run may go past the caps or hardware bounds the review names; written into "
            "the manifest before it is signed (approval refuses such a run without it).",
        ),
    ] = None,
) -> None:
    """Show a run's review and manifest, then sign the manifest with an approver key.

    The signature counts while the run is unchanged; enough valid approvals move the run to
    `approved`. The key never leaves this machine: only the signature is recorded. A run past a
    cap or a hardware bound is approved only with --accept-exceedance "why" (recorded inside the
    signed manifest; later approvers sign the same acceptance).
    """
    from payouts.cli.run import exceedance_text, print_review
    from payouts.ledger.errors import AlreadyDone, LedgerError
    from payouts.ledger.identity import bind_payout_account
    from payouts.runs.approvals import approve_run, build_manifest, required_approvals, sign_manifest, valid_approvals
    from payouts.runs.claimable import describe_policy, policy_json, record_claimable_policy
    from payouts.runs.errors import RunsError
    from payouts.runs.exceedances import ExceedancesNotAccepted, record_acceptance
    from payouts.runs.service import require_run
    from payouts.stellar.keys import KeyFileError, load_keypair
    from payouts.wiring import payout_public_key, review_of

    cli = get_context(ctx)
    try:
        keypair = load_keypair(key_file)
    except KeyFileError as exc:
        abort(str(exc), code=2)
    settings = cli.settings
    try:
        payout = payout_public_key(settings)
    except KeyFileError:
        payout = None  # an approver's machine need not hold the payout key
    with cli.session() as session:
        try:
            if payout is not None:
                bind_payout_account(session, payout)  # recorded once; the manifest names it
            run = require_run(session, run_id)
            required = required_approvals(run.network, settings.approvals_required)
            # the claimable-balance policy of this machine's settings goes into what is signed
            policy = policy_json(settings.claimable_for_no_trustline, settings.claimable_reclaim_after_days)
            record_claimable_policy(
                session, run, policy, approved=len(valid_approvals(session, run, settings.approvers))
            )
            review = review_of(settings, session, run)
            if accept_exceedance is not None:
                approved = len(valid_approvals(session, run, settings.approvers))
                if record_acceptance(session, run, review.exceedances, accept_exceedance, approved=approved):
                    review = review_of(settings, session, run)
            print_review(review)
            if review.unaccepted_exceedances:
                raise ExceedancesNotAccepted(review.unaccepted_exceedances)
            manifest = build_manifest(session, run)
            out_console.print("Manifest to sign:", manifest.to_bytes().decode())
            out_console.print(f"SHA-256: {manifest.sha256.hex()}   approver: {keypair.public_key}")
            out_console.print(f"Destinations without a TFT trustline: {describe_policy(run.claimable_policy_json)}")
            if not yes and not typer.confirm("Sign this manifest?", err=True):
                abort("not signed")
            count = approve_run(
                session,
                run,
                public_key=keypair.public_key,
                signature_b64=sign_manifest(manifest, keypair),
                approvers=settings.approvers,
                required=required,
                exceedances=review.exceedances,
            )
        except AlreadyDone as exc:
            err_console.print(str(exc))
            return
        except ExceedancesNotAccepted as exc:
            named = "; ".join(exceedance_text(e) for e in exc.exceedances)
            abort(
                f"run {run_id} not approved: it exceeds {named}. Approve past them only with the reason "
                f'recorded in the signed manifest: payouts approve {run_id} --key-file {key_file} --accept-exceedance "why"'
            )
        except (RunsError, LedgerError) as exc:
            abort(str(exc))
        err_console.print(f"run {run.id}: {count} of {required} approval(s); status {run.status}")


def reject(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="Run id.")],
    reason: Annotated[str, typer.Option("--reason", help="Why the run is rejected (recorded).")],
) -> None:
    """Reject a run for good; its period can then be calculated again."""
    from payouts.runs.approvals import reject_run
    from payouts.runs.errors import RunsError
    from payouts.runs.service import require_run

    cli = get_context(ctx)
    with cli.session() as session:
        try:
            run = require_run(session, run_id)
            reject_run(session, run, reason)
        except RunsError as exc:
            abort(str(exc))
        except Exception as exc:  # noqa: BLE001 - InvalidTransition: say which state refused it
            abort(f"run {run_id} cannot be rejected: {exc}")
    err_console.print(f"run {run_id} rejected: {reason}")
