"""Payment commands: pay an approved run, reconcile with the chain, list what is held."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from payouts.cli.console import abort, err_console, out_console, print_json
from payouts.cli.context import get_context
from payouts.cli.failures import fail
from payouts.money import format_tft
from payouts.periods import Period, PeriodError, resolve_period

if TYPE_CHECKING:  # the ledger loads when a command runs, not for its --help
    from payouts.runs.progress import RunProgress

HOLD_ADVICE = {
    "no_address": "set a payout address on the farm",
    "invalid_address": "set a valid Stellar address (G...) on the farm",
    "no_trustline": "add a TFT trustline to the payout address",
    "no_account": "create (fund) the payout account on Stellar",
    "not_authorized": "ask the issuer to authorize the TFT trustline",
    "line_full": "raise the TFT trustline limit",
    "not_claimed": "add a TFT trustline; the next run pays it again",
}


def pay(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="An approved run (see `payouts runs`).")],
) -> None:
    """Pay every payable receipt of an approved run exactly once, on the configured network.

    Safe to run again after any interruption: it resumes from the ledger, looks unknown
    outcomes up by hash and never rebuilds a transaction that could still land.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from payouts.ledger import repository
    from payouts.ledger.errors import AlreadyDone
    from payouts.ledger.states import PaymentStatus
    from payouts.runs.approvals import approver_notice, required_approvals
    from payouts.runs.errors import RunsError
    from payouts.runs.payment import PaymentEngine
    from payouts.runs.service import require_run
    from payouts.stellar.horizon import HorizonUnavailable, StellarError
    from payouts.stellar.keys import KeyFileError
    from payouts.wiring import horizon, pay_config, signing_keys

    cli = get_context(ctx)
    settings = cli.settings
    with cli.session() as session:
        try:
            run = require_run(session, run_id)
        except RunsError as exc:
            abort(str(exc))
        payable = len([p for p in repository.payments_of_run(session, run_id) if PaymentStatus(p.status).is_payable])
    if run.network != settings.network:
        abort(f"run {run_id} was calculated for network {run.network!r}; PAYOUTS_NETWORK is {settings.network!r}")
    with cli.session() as session:
        notice = approver_notice(
            session, settings.approvers, required_approvals(run.network, settings.approvals_required)
        )
    if notice:
        err_console.print(f"approvers: {notice}")
    try:
        keys = signing_keys(settings)
        config = pay_config(settings, run.network)
    except (KeyFileError, ValueError, OSError) as exc:
        abort(str(exc), code=2)
    try:
        with (
            horizon(settings) as client,
            Progress(
                TextColumn("[bold]paying[/] run " + str(run_id)),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
                transient=True,
            ) as bar,
        ):
            task = bar.add_task("payments", total=payable)
            engine = PaymentEngine(cli.units(), client, keys, config)
            try:
                # after a crash the dead payer's lease lapses within the lease time: wait for it
                report = engine.pay(
                    run_id,
                    progress=lambda r: bar.update(task, completed=r.paid + r.held),
                    wait_for_lease_s=settings.lease_ttl_s + 1,
                )
            except AlreadyDone as exc:
                err_console.print(str(exc))
                _whole_run(cli, run_id)
                return
            except HorizonUnavailable as exc:
                fail(exc)
            except (RunsError, StellarError) as exc:
                abort(str(exc))
    except KeyboardInterrupt:
        # every envelope is on record before it is sent, and its outcome is looked up by hash
        err_console.print(
            f"\ninterrupted: nothing is lost. What was sent is on record and is looked up by its hash; "
            f"run `payouts pay {run_id}` again to continue where this stopped."
        )
        _whole_run(cli, run_id, to=err_console, unknown_words="unknown outcomes met so far")
        raise typer.Exit(130) from None
    whole = _whole_run(cli, run_id, status=report.status)
    out_console.print(
        f"this call: {report.paid} paid in {report.transactions} transactions over {len(report.ledgers)} ledgers; "
        f"{report.held} held; {report.unknown_outcomes} unknown outcomes resolved"
        + (f"; whole run: {whole.transactions} transactions" if whole.transactions != report.transactions else "")
    )
    if report.status == "stopped":
        abort(f"run {run_id} stopped: {report.reason}")


def _whole_run(
    cli: Any,
    run_id: int,
    *,
    status: str | None = None,
    to: Any = None,
    unknown_words: str = "unknown outcomes resolved",
) -> RunProgress:
    """The whole run's progress from the ledger, as one line (not only this call's work)."""
    from payouts.runs.progress import run_progress
    from payouts.runs.service import require_run

    with cli.session() as session:
        progress = run_progress(session, [run_id])[run_id]
        if status is None:
            status = require_run(session, run_id).status
    (to or out_console).print(f"run {run_id}: {status}; {progress.line()}; {progress.unknown_outcomes} {unknown_words}")
    return progress


def recover(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="The run to scan the chain for.")],
    accept: Annotated[
        str | None,
        typer.Option(
            help='"who, why": accept the transactions from our accounts that match nothing this ledger '
            "knows (a key rotation, a manual transfer); on record, and the run continues."
        ),
    ] = None,
) -> None:
    """Scan the chain for a run: adopt what a lost ledger state already paid, list what matches
    nothing, and with --accept record an operator's acceptance of it.

    It first writes this ledger's claim on the period (the payout account's data entry); a
    restored or copied ledger, or a claim this ledger did not write, is taken over after the
    previous payer's transactions have expired. A restored or copied ledger pays again only
    after this."""
    from payouts.runs.errors import RunsError
    from payouts.runs.payment import PaymentEngine
    from payouts.runs.service import require_run
    from payouts.stellar.horizon import StellarError
    from payouts.stellar.keys import KeyFileError
    from payouts.wiring import horizon, pay_config, signing_keys

    cli = get_context(ctx)
    settings = cli.settings
    with cli.session() as session:
        try:
            run = require_run(session, run_id)
        except RunsError as exc:
            abort(str(exc))
    try:
        keys = signing_keys(settings)
        config = pay_config(settings, run.network)
    except (KeyFileError, ValueError, OSError) as exc:
        abort(str(exc), code=2)
    with horizon(settings) as client:
        engine = PaymentEngine(cli.units(), client, keys, config)
        try:
            status, result = engine.recover(run_id, accept=accept)
        except (RunsError, StellarError) as exc:
            abort(str(exc))
    out_console.print(
        f"run {run_id}: {status}; chain scan read {result.transactions_read} transactions "
        f"({result.requests} requests, {result.seconds:.2f} s); {result.adopted_payments} payments adopted; "
        f"{len(result.unmatched_hashes)} accepted; {result.incoming_ignored} incoming ignored"
    )


def reconcile(
    ctx: typer.Context,
    period: Annotated[str | None, typer.Option(help="Month label, e.g. 2025-11.")] = None,
    period_offset: Annotated[int | None, typer.Option(help="Period offset, e.g. 91.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Compare the payout account's payments on chain with the ledger for a period's run.

    Differences are reported loudly and stop the run; nothing is ever paid again to fix one.
    """
    from payouts.cli.surplus import payout_surplus_now
    from payouts.ledger import repository
    from payouts.ledger.repository import id_of
    from payouts.runs.claimable import settle_balances
    from payouts.runs.reconcile import reconcile_run, record_reconciliation
    from payouts.runs.sweep import sweep_run
    from payouts.stellar.horizon import StellarError
    from payouts.stellar.keys import KeyFileError
    from payouts.wiring import horizon, pay_config, signing_keys

    cli = get_context(ctx)
    settings = cli.settings
    try:
        month = resolve_period(period, period_offset)
        keys = signing_keys(settings)
        config = pay_config(settings, settings.network)
    except (PeriodError, KeyFileError, ValueError, OSError) as exc:
        abort(str(exc), code=2)
    treasury = settings.treasury_account if settings.two_tier else None
    with cli.session() as session:
        run = repository.live_run_for_period(session, month.offset)
        if run is None:
            abort(f"no run for period {month}")
        with horizon(settings) as client:
            result = reconcile_run(
                session, run, client, keys.payout_account, config.asset_code, config.asset_issuer, treasury=treasury
            )
            balances = settle_balances(session, client, keys.payout_account)
        record_reconciliation(session, run, result)
        run_id = id_of(run)
    sweep = None
    surplus = None
    if treasury is not None and not result.behind:
        # what the run's funding left in the hot account goes back to the treasury (exactly once)
        with horizon(settings) as client:
            try:
                sweep = sweep_run(cli.units(), run_id, client, keys, config, treasury=treasury)
                surplus = payout_surplus_now(cli, client)
            except StellarError as exc:
                abort(str(exc))
    if as_json:
        print_json(
            result.__dict__
            | {"clean": result.clean}
            | ({"sweep": sweep.__dict__} if sweep is not None else {})
            | ({"payout_surplus_tft_units": surplus.surplus_units} if surplus is not None else {})
            | {"claimable_balances": balances.document()}
        )
    else:
        out_console.print(
            f"run {run_id} ({month}): {result.paid_in_ledger} paid in the ledger "
            f"({format_tft(result.ledger_total_units)} TFT), {result.paid_on_chain} on chain "
            f"({format_tft(result.chain_total_units)} TFT)"
        )
        for line in result.differences + result.unknown_on_chain:
            err_console.print(f"[bold red]difference:[/] {line}")
        if sweep is not None and sweep.state not in ("not funded",):
            err_console.print(f"sweep: {sweep.message}")
        if surplus is not None and surplus.surplus_units:
            err_console.print(f"[bold yellow]warning:[/] {surplus.describe()}")
        if result.behind:
            err_console.print(f"not compared yet: {result.behind}")
        if balances.claimed or balances.reclaimed or balances.live:
            err_console.print(
                f"claimable balances: {balances.claimed} claimed now, {balances.reclaimed} taken back, "
                f"{balances.live} waiting to be claimed"
            )
        for due_run, ids in sorted(balances.due.items()):
            err_console.print(
                f"[bold yellow]reclaim:[/] run {due_run} has {len(ids)} unclaimed balance(s) past their window: "
                f"`payouts reclaim {due_run}` takes them back (the receipts are then paid by the next run)"
            )
        for line in balances.differences:
            err_console.print(f"[bold red]difference:[/] {line}")
    if not result.clean:
        raise typer.Exit(1)


def held(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Everything outstanding: one entry per owed receipt that is held or being retried, why,
    and what the farmer should fix."""
    from rich.table import Table

    from payouts.export.wording import claimable_note
    from payouts.ledger.outstanding import outstanding, waiting_to_be_claimed
    from payouts.ledger.states import HELD_PAYMENT_STATUSES

    cli = get_context(ctx)
    max_retries = cli.settings.max_retries
    with cli.session() as session:
        owed = [e for e in outstanding(session) if e.is_held or e.retries > 0]
        waiting = waiting_to_be_claimed(session)
    entries: list[dict[str, Any]] = [
        {
            "run_id": e.earned_run_id,
            "period": Period(e.earned_period_offset).label,
            "farm_id": e.farm_id,
            "node_id": e.node_id,
            "amount_tft_units": e.amount_tft_units,
            "status": e.status,
            "reason": e.hold_reason,
            "fix": HOLD_ADVICE.get(e.hold_reason, "") if e.is_held else "",
            "destination": e.destination,
            "receipt_hash": e.receipt_hash,
            "retries": e.retries,
            "retries_exhausted": e.is_held and max_retries is not None and e.retries >= max_retries,
            "carried_by_run_id": e.run_id,
            "carried_by_period": Period(e.period_offset).label,
            "payment_id": e.payment_id,
        }
        for e in owed
    ]
    # paid out as claimable balances, not owed: listed so nobody forgets the farmer must claim
    claimable: list[dict[str, Any]] = [
        {
            "run_id": w.run_id,
            "period": Period(w.period_offset).label,
            "farm_id": w.farm_id,
            "node_id": w.node_id,
            "amount_tft_units": w.amount_tft_units,
            "status": "claimable",
            "reason": "",
            "fix": claimable_note(w.claimable_until),
            "destination": w.destination,
            "claimable_balance_id": w.balance_id,
            "claimable_until": w.claimable_until.isoformat() if w.claimable_until else None,
            "payment_id": w.payment_id,
        }
        for w in waiting
    ]
    if as_json:
        print_json(entries + claimable)
        return
    if claimable:
        sent = Table(
            title=f"Sent as claimable balances ({len(claimable)}, "
            f"{format_tft(sum(e['amount_tft_units'] for e in claimable))} TFT; paid out, not owed)"
        )
        for column in ("period", "farm", "node", "TFT", "what the farmer does"):
            sent.add_column(column)
        for e in claimable:
            sent.add_row(e["period"], str(e["farm_id"]), str(e["node_id"]), format_tft(e["amount_tft_units"]), e["fix"])
        out_console.print(sent)
    if not entries:
        err_console.print("nothing is held")
        return
    table = Table(
        title=f"Held payments ({len(entries)} owed receipts, "
        f"{format_tft(sum(e['amount_tft_units'] for e in entries))} TFT)"
    )
    for column in ("period", "farm", "node", "TFT", "state", "what to fix", "retries"):
        table.add_column(column)
    for e in entries:
        retries = f"{e['retries']} (no more: settle by hand)" if e["retries_exhausted"] else str(e["retries"])
        if e["retries"]:
            state = f"retried by the {e['carried_by_period']} run: {e['status']}"
        else:
            state = e["status"]
        if e["reason"] and e["status"] in HELD_PAYMENT_STATUSES:
            state += f" ({e['reason']})"
        table.add_row(
            e["period"],
            str(e["farm_id"]),
            str(e["node_id"]),
            format_tft(e["amount_tft_units"]),
            state,
            e["fix"],
            retries,
        )
    out_console.print(table)


def reclaim(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="The run that sent the claimable balances.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Take back a run's claimable balances that nobody claimed within the reclaim window.

    Each such receipt is owed again (held, `not_claimed`) and the next run pays it once; the
    TFT comes back into the payout account. Balances still inside their window, and balances
    the farmer claimed meanwhile, are left alone (a claimed one settles its receipt).
    """
    from payouts.ledger.errors import LedgerError
    from payouts.runs.claimable import reclaim_run
    from payouts.runs.errors import RunsError
    from payouts.stellar.horizon import StellarError
    from payouts.stellar.keys import KeyFileError
    from payouts.wiring import horizon, pay_config, signing_keys

    cli = get_context(ctx)
    settings = cli.settings
    try:
        keys = signing_keys(settings)
        config = pay_config(settings, settings.network)
    except (KeyFileError, ValueError, OSError) as exc:
        abort(str(exc), code=2)
    treasury = settings.treasury_account if settings.two_tier else None
    sweep = None
    with horizon(settings) as client:
        try:
            result = reclaim_run(cli.units(), run_id, client, keys, config)
            if treasury is not None and result.state in ("reclaimed", "adopted"):
                # two-tier: what came back is no run's funding any more; it returns to the treasury
                from payouts.runs.sweep import sweep_run

                sweep = sweep_run(cli.units(), run_id, client, keys, config, treasury=treasury)
        except (RunsError, LedgerError, StellarError) as exc:
            abort(str(exc))
    if as_json:
        print_json(result.__dict__ | ({"sweep": sweep.__dict__} if sweep is not None else {}))
    else:
        err_console.print(result.message)
        if sweep is not None:
            err_console.print(f"sweep: {sweep.message}")
    if result.state in ("failed", "waiting"):
        raise typer.Exit(1)
