"""The composition root: building the services from settings, the one place the CLI and the
workers share (nothing below `cli/` and `workers/` imports it).

Settings are read at the edges and handed in here; the services below never read the
environment themselves. The engine handed in becomes the services' unit-of-work factory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import structlog
from sqlalchemy import Engine
from sqlmodel import Session

from config.settings import Settings
from payouts.clock import Clock
from payouts.export.node_events import EventSource
from payouts.export.rows import ExportFilter, iso_utc, iter_entries, periods_of_run_entries, runs_document
from payouts.export.site import PublishReport, publish_site
from payouts.export.writers import EXPORT_FORMAT, write_export
from payouts.files import atomic_path
from payouts.ledger.identity import ledger_identity
from payouts.ledger.models import Run
from payouts.ledger.repository import id_of
from payouts.ledger.states import RunStatus
from payouts.ledger.types import utcnow
from payouts.ledger.unit_of_work import UnitOfWorkFactory, UnitsOfWork
from payouts.periods import Period, PeriodError, offset_for_label
from payouts.runs.approvals import required_approvals
from payouts.runs.claimable import settle_balances
from payouts.runs.monthly import Freezer, InputsUnavailable, MonthlyJob, ProgramWindow
from payouts.runs.payment import PayConfig, PaymentEngine, RunStopped
from payouts.runs.reconcile import reconcile_run, record_reconciliation
from payouts.runs.retries_now import HoldCheck
from payouts.runs.review import Review, ReviewLimits, build_review
from payouts.runs.statement import period_statement
from payouts.runs.sweep import sweep_run
from payouts.stellar.clock import ChainClock
from payouts.stellar.horizon import HorizonClient, HorizonUnavailable, StellarError
from payouts.stellar.keys import KeyFileError, SigningKeys, load_keypair
from payouts.stellar.network import LEDGER_CLOSE_S, PASSPHRASES, TFT_CODE, bounded_ledger_close_s, tft_issuer
from payouts.stellar.preflight import Asset, check_destinations

log = structlog.get_logger(__name__)


def signing_keys(settings: Settings) -> SigningKeys:
    if settings.stellar_accounts_file is not None:
        return SigningKeys.from_accounts_file(settings.stellar_accounts_file)
    if settings.payout_key_file is None:
        raise KeyFileError(
            "no payout key: set PAYOUTS_PAYOUT_KEY_FILE (or PAYOUTS_STELLAR_ACCOUNTS_FILE on the sandbox)"
        )
    return SigningKeys(
        load_keypair(settings.payout_key_file), [load_keypair(path) for path in settings.channel_key_files]
    )


def payout_public_key(settings: Settings) -> str | None:
    """The payout account the settings name (accounts file or payout key file), or None."""
    if settings.stellar_accounts_file is not None:
        return SigningKeys.from_accounts_file(settings.stellar_accounts_file).payout_account
    if settings.payout_key_file is not None:
        return load_keypair(settings.payout_key_file).public_key
    return None


def ledger_close_s(settings: Settings, network: str, *, transport: httpx.BaseTransport | None = None) -> float:
    """The close interval a transaction's ledger bound counts in: the public networks' own; on
    the dev network the sandbox's, measured from Horizon, since a bound counted in 5 s ledgers
    there (0.2 s apart, say) lasts a fraction of the timeout and a Horizon a few ledgers behind
    makes every transaction too late before it is sent. 5 s when Horizon cannot tell; within
    bounded_ledger_close_s's range whatever Horizon says."""
    if network in LEDGER_CLOSE_S:
        return LEDGER_CLOSE_S[network]
    try:
        with HorizonClient(settings.horizon_url, timeout_s=10, max_read_attempts=2, transport=transport) as client:
            measured = client.ledger_close_s()
    except (StellarError, httpx.HTTPError) as exc:
        # a Horizon that does not answer fails the command that needs it next, with the URL
        # and what to do; a second line for the same outage only buries that one
        level = log.debug if isinstance(exc, HorizonUnavailable | httpx.TransportError) else log.warning
        level("ledger_close.unmeasured", network=network, error=type(exc).__name__)
        measured = None
    bounded = bounded_ledger_close_s(measured)
    if measured is not None and bounded != measured:
        log.warning("ledger_close.out_of_range", network=network, measured_s=measured, used_s=bounded)
    return bounded


def pay_config(settings: Settings, network: str) -> PayConfig:
    return PayConfig(
        network_passphrase=PASSPHRASES[settings.network],
        asset_code=TFT_CODE,
        asset_issuer=tft_issuer(settings.network, settings.tft_issuer, settings.stellar_accounts_file),
        approvers=tuple(settings.approvers),
        approvals_required=required_approvals(network, settings.approvals_required),
        memo_mode=settings.memo_mode,
        batch_size=settings.batch_size,
        treasury_account=settings.treasury_account,
        base_fee_stroops=settings.base_fee_stroops,
        max_fee_stroops=settings.max_fee_stroops,
        tx_timeout_s=settings.tx_timeout_s,
        ledger_close_s=ledger_close_s(settings, network),
        two_tier=settings.two_tier,
        lease_ttl_s=settings.lease_ttl_s,
        claimable_for_no_trustline=settings.claimable_for_no_trustline,
    )


def horizon(settings: Settings) -> HorizonClient:
    return HorizonClient(settings.horizon_url, max_requests_per_s=settings.horizon_requests_per_s)


def chain_clock(settings: Settings) -> Clock:
    """Whose time says a period's inputs are complete: the chain's (Horizon's latest ledger)."""
    return ChainClock(settings.horizon_url)


def review_limits(settings: Settings) -> ReviewLimits:
    return ReviewLimits(
        cap_node_tft_units=settings.cap_node_tft_units,
        cap_farm_tft_units=settings.cap_farm_tft_units,
        cap_run_tft_units=settings.cap_run_tft_units,
        outlier_factor=settings.review_outlier_factor,
        outlier_months=settings.review_outlier_months,
        max_cores=settings.plausible_max_cores,
        max_memory_gib=settings.plausible_max_memory_gib,
        max_ssd_gib=settings.plausible_max_ssd_gib,
        max_hdd_gib=settings.plausible_max_hdd_gib,
    )


def review_of(settings: Settings, session: Session, run: Run) -> Review:
    """The review of a run with the settings' limits, and the payout and treasury balances read
    from Horizon (one quick attempt: a review is shown whether or not Horizon answers)."""
    try:
        payout = payout_public_key(settings)
    except (KeyFileError, OSError, ValueError):
        payout = None  # an approver's machine need not hold the payout key
    payout = payout or ledger_identity(session).payout_account
    try:
        asset: tuple[str, str] | None = (
            TFT_CODE,
            tft_issuer(settings.network, settings.tft_issuer, settings.stellar_accounts_file),
        )
    except (ValueError, KeyFileError, OSError):
        asset = None
    with HorizonClient(settings.horizon_url, timeout_s=5.0, max_read_attempts=1) as client:
        return build_review(
            session,
            run,
            limits=review_limits(settings),
            approvers=settings.approvers,
            lookup=client.account,
            accounts=[("payout", payout), ("treasury", settings.treasury_account)],
            asset=asset,
        )


def program_window(settings: Settings) -> ProgramWindow:
    try:
        first = offset_for_label(settings.first_period)
        last = offset_for_label(settings.last_period) if settings.last_period else None
    except PeriodError as exc:
        raise ValueError(f"settings first_period/last_period: {exc}") from None
    return ProgramWindow(first, last)


def export_dir(settings: Settings) -> Path:
    return settings.export_dir or settings.state_dir / "exports"


def pay_with_engine(
    settings: Settings, units: UnitOfWorkFactory, *, budget_s: float | None = None
) -> Callable[[int], str]:
    """Pay a run in this process (to the end, or for `budget_s`); returns its status after."""

    def pay(run_id: int) -> str:
        with horizon(settings) as client:
            engine = PaymentEngine(units, client, signing_keys(settings), pay_config(settings, settings.network))
            try:
                return engine.pay(run_id, budget_s=budget_s).status
            except RunStopped:
                return RunStatus.STOPPED  # on record with its reason; the monthly job alerts

    return pay


def reconcile_step(settings: Settings) -> Callable[[Session, Run], None]:
    def reconcile(session: Session, run: Run) -> None:
        config = pay_config(settings, run.network)
        with horizon(settings) as client:
            result = reconcile_run(
                session,
                run,
                client,
                signing_keys(settings).payout_account,
                config.asset_code,
                config.asset_issuer,
                treasury=settings.treasury_account if settings.two_tier else None,
            )
            # claimed balances settle their receipts; reclaimed ones are owed again
            settle_balances(session, client, signing_keys(settings).payout_account)
        record_reconciliation(session, run, result)

    return reconcile


def sweep_step(settings: Settings, units: UnitOfWorkFactory) -> Callable[[int], object]:
    """Two-tier: a reconciled run's leftover funding back to the treasury (SPEC 10)."""

    def sweep(run_id: int) -> object:
        if not settings.two_tier or not settings.treasury_account:
            return None
        try:
            with horizon(settings) as client:
                result = sweep_run(
                    units,
                    run_id,
                    client,
                    signing_keys(settings),
                    pay_config(settings, settings.network),
                    treasury=settings.treasury_account,
                )
        except StellarError as exc:  # on record as it stands; the next reconcile looks again
            log.warning("run.sweep.unavailable", run_id=run_id, error=str(exc))
            return None
        log.info("run.sweep", run_id=run_id, state=result.state, amount_tft_units=result.amount_tft_units)
        return result

    return sweep


def site_event_source(settings: Settings) -> EventSource:
    """Where the status site reads node-month events: the runs' frozen snapshots, and the
    lists already made from them."""
    return EventSource(
        frozen_dir=settings.state_dir / "frozen",
        cache_dir=settings.state_dir / "site-events",
        max_decompressed_bytes=settings.snapshot_max_bytes,
    )


def publish_status_site(settings: Settings, session: Session, out_dir: Path) -> PublishReport:
    """The farmers' status site, the same from `payouts publish` and the monthly job."""
    return publish_site(
        session, out_dir, network=settings.network, horizon_url=settings.horizon_url, events=site_event_source(settings)
    )


def export_step(settings: Settings) -> Callable[[Session, Run], str]:
    """The period's farmer export (CSV and JSON) and the status site, written atomically."""

    def export(session: Session, run: Run) -> str:
        # the run's own period, and the earlier periods whose held receipts it retried: their
        # entries changed (retried, paid by the retry) and their files must not say otherwise
        offsets = sorted({run.period_offset, *periods_of_run_entries(session, id_of(run))})
        for offset in offsets:
            _export_period(session, offset)
        publish_status_site(settings, session, export_dir(settings) / "site")
        return str(export_dir(settings) / Period(run.period_offset).label)

    def _export_period(session: Session, period_offset: int) -> None:
        label = Period(period_offset).label
        folder = export_dir(settings) / label
        folder.mkdir(parents=True, exist_ok=True)
        filters = ExportFilter(period_offset=period_offset)
        header = {"format": EXPORT_FORMAT, "generated_at": iso_utc(utcnow()), "filters": filters.document()}
        for fmt in ("csv", "json"):
            target = folder / f"payouts-{label}.{fmt}"
            with atomic_path(target) as partial, partial.open("w", encoding="utf-8", newline="") as stream:
                runs = runs_document(session, filters) if fmt == "json" else []
                write_export(fmt, header, runs, iter_entries(session, filters), stream)
        statement = folder / f"statement-{label}.json"
        statement.write_text(orjson.dumps(period_statement(session, period_offset).document()).decode() + "\n")

    return export


def freezer(settings: Settings) -> Freezer:
    def freeze(period_offset: int) -> Path:
        # the snapshot builder (numpy) loads when a period's inputs are frozen, not for paying
        from payouts.sources import SnapshotUnavailable, freeze_snapshot

        try:
            return freeze_snapshot(settings, period_offset, settings.state_dir / "frozen")
        except SnapshotUnavailable as exc:
            raise InputsUnavailable(str(exc)) from None

    return freeze


def destination_holds(settings: Settings) -> HoldCheck:
    """The preflight's destination checks against the settings' Horizon: which destinations
    cannot receive now, with the reason (our own accounts never receive)."""

    def holds(amounts: list[tuple[str, int]]) -> dict[str, str]:
        config = pay_config(settings, settings.network)
        keys = signing_keys(settings)
        own = {channel: "channel_account" for channel in keys.channel_accounts}
        own[keys.payout_account] = "payout_account"
        if config.treasury_account:
            own[config.treasury_account] = "treasury_account"
        with horizon(settings) as client:
            return check_destinations(client, Asset(config.asset_code, config.asset_issuer), amounts, own)

    return holds


def build_monthly_job(
    settings: Settings, db: Engine, *, pay: Callable[[int], str] | None = None, clock: Clock | None = None
) -> MonthlyJob:
    """The monthly job on the ledger `db`; `pay` defaults to paying in this process to the end,
    `clock` to the chain's time."""
    units = UnitsOfWork(db)
    return MonthlyJob(
        units=units,
        window=program_window(settings),
        freeze=freezer(settings),
        pay=pay or pay_with_engine(settings, units),
        reconcile=reconcile_step(settings),
        export=export_step(settings),
        approvers=tuple(settings.approvers),
        approvals_required=required_approvals(settings.network, settings.approvals_required),
        two_tier=settings.two_tier,
        max_retries=settings.max_retries,
        webhook_url=settings.alert_webhook_url,
        snapshot_max_bytes=settings.snapshot_max_bytes,
        holds=destination_holds(settings),
        network=settings.network,
        clock=clock or chain_clock(settings),
        sweep=sweep_step(settings, units),
    )
