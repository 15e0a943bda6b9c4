"""Runs: a period's calculation recorded in the ledger, and what operators do with it.

Services never commit; the caller (a CLI command or a Celery task) owns the session and commits
when the whole unit of work succeeded, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import orjson
import structlog
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from payouts import CODE_VERSION
from payouts.clock import Clock, SystemClock
from payouts.ledger import repository
from payouts.ledger.events import record_event
from payouts.ledger.kinds import PaymentKind, PayoutBasis
from payouts.ledger.models import NodeTransition, Receipt, Run
from payouts.ledger.repository import id_of
from payouts.ledger.states import PaymentStatus, RunStatus, transition
from payouts.ledger.types import utcnow
from payouts.periods import Period
from payouts.runs.completeness import require_complete
from payouts.runs.errors import RunExistsForPeriod, RunNotFound, RunNotReplaceable
from payouts.runs.retries import join_corrections, retry_rows
from payouts.snapshot.load import LoadedSnapshot

if TYPE_CHECKING:  # the calculation (numpy) loads when a period is calculated, not for paying
    from payouts.calculation.engine import PeriodCalculation

log = structlog.get_logger(__name__)

#: Eligibilities whose positive reward is paid now, or held until the farm fixes its address.
PAYABLE_ELIGIBILITY = "ok"
HELD_ELIGIBILITY = ("no_address", "invalid_address")

_RECEIPT_COLUMNS = (
    "node_id",
    "farm_id",
    "twin_id",
    "farm_name",
    "farming_policy_id",
    "node_type",
    "measured_uptime_s",
    "uptime_permille",
    "violation",
    "eligibility",
    "reason",
    "reward_musd",
    "reward_tft_units",
    "stellar_payout_address",
    "cu_pm",
    "su_pm",
    "nu_pm",
    "receipt_bytes",
    "receipt_hash",
    "connection_price_musd",
)


@dataclass(frozen=True)
class CalculationOutcome:
    """What `calculate_run` did: a new run, the existing one, or a dry run (no run)."""

    period: Period
    snapshot_sha256: str
    run: Run | None
    calculation: PeriodCalculation | None
    created: bool
    replaced_run_id: int | None = None


def report_document(calculation: PeriodCalculation) -> dict:
    report = calculation.report
    document = dataclasses.asdict(report) if dataclasses.is_dataclass(report) else dict(report)
    return orjson.loads(orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS, default=sorted))


def calculate_run(
    session: Session,
    snapshot: LoadedSnapshot,
    *,
    replace: bool = False,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
    max_retries: int | None = None,
    clock: Clock | None = None,
    rehearsal: bool = False,
) -> CalculationOutcome:
    """Calculate the snapshot's period and record it as a run (unless `dry_run`).

    The same snapshot again returns the existing run (created=False). A different snapshot for
    a period with a live run is refused, unless `replace` and the run is not approved yet.
    A period whose inputs are not complete by `clock` (the chain's time, from the wiring) is
    refused (PeriodIncomplete), unless `rehearsal` on the sandbox network (RehearsalRefused
    elsewhere); a rehearsal run is marked as one and is otherwise like any other.
    """
    period = Period(snapshot.header.period_offset)
    structlog.contextvars.bind_contextvars(period=period.label)
    require_complete(period, clock or SystemClock(), network=snapshot.header.network, rehearsal=rehearsal)
    existing = None if dry_run else _check_existing(session, period, snapshot.sha256, replace)
    if existing is not None and existing.snapshot_sha256 == snapshot.sha256:
        log.info("run.calculate.already_done", run_id=existing.id)
        return CalculationOutcome(period, snapshot.sha256, existing, None, created=False)

    from payouts.calculation.engine import calculate_period

    calculation = calculate_period(snapshot, progress=progress, opted_out_since=_opt_outs(session))
    if dry_run:
        log.info("run.calculate.dry_run", nodes=calculation.totals.nodes)
        return CalculationOutcome(period, snapshot.sha256, None, calculation, created=False)

    try:
        with session.begin_nested():
            if existing is not None:
                transition(
                    session,
                    Run,
                    id_of(existing),
                    RunStatus(existing.status),
                    RunStatus.REPLACED,
                    event="run.replaced",
                    detail={"snapshot_sha256": snapshot.sha256},
                )
            run = _record_run(
                session, snapshot, calculation, replaces=existing, max_retries=max_retries, rehearsal=rehearsal
            )
    except IntegrityError:
        # another process recorded this period between our check and our insert
        raced = repository.live_run_for_period(session, period.offset)
        if raced is not None and raced.snapshot_sha256 == snapshot.sha256:
            return CalculationOutcome(period, snapshot.sha256, raced, None, created=False)
        raise RunExistsForPeriod(_exists_message(raced, period)) from None
    structlog.contextvars.bind_contextvars(run_id=run.id)
    log.info(
        "run.calculated",
        nodes=run.node_count,
        rewarded_nodes=run.rewarded_node_count,
        total_tft_units=run.total_tft_units,
        replaced_run_id=existing.id if existing else None,
    )
    return CalculationOutcome(
        period,
        snapshot.sha256,
        run,
        calculation,
        created=True,
        replaced_run_id=existing.id if existing else None,
    )


def _opt_outs(session: Session) -> dict[int, int]:
    """Nodes that moved to the revenue model: node id -> v3 opt-out time (unix seconds)."""
    rows = session.exec(
        select(NodeTransition.node_id, NodeTransition.v3_opted_out_at).where(
            col(NodeTransition.v3_opted_out_at).is_not(None)
        )
    ).all()
    return {node_id: int(opted_out_at.timestamp()) for node_id, opted_out_at in rows if opted_out_at is not None}


def _exists_message(run: Run | None, period: Period) -> str:
    if run is None:
        return f"period {period} changed while calculating; try again"
    return (
        f"period {period} already has run {run.id} ({run.status}) from snapshot "
        f"{run.snapshot_sha256[:12]}; this snapshot is different"
    )


def _check_existing(session: Session, period: Period, sha256: str, replace: bool) -> Run | None:
    existing = repository.live_run_for_period(session, period.offset)
    if existing is None or existing.snapshot_sha256 == sha256:
        return existing
    if not RunStatus(existing.status).is_replaceable:
        raise RunNotReplaceable(
            _exists_message(existing, period) + f"; a run that is {existing.status} can no longer be replaced"
        )
    if not replace:
        raise RunExistsForPeriod(_exists_message(existing, period) + "; pass --replace to replace the unapproved run")
    return existing


def _record_run(
    session: Session,
    snapshot: LoadedSnapshot,
    calculation: PeriodCalculation,
    *,
    replaces: Run | None,
    max_retries: int | None = None,
    rehearsal: bool = False,
) -> Run:
    totals = calculation.totals
    now = utcnow()
    payable = sum(r.reward_tft_units for r in calculation.receipts if r.eligibility == PAYABLE_ELIGIBILITY)
    run = Run(
        period_offset=calculation.period.offset,
        period_start_ts=calculation.period.start_ts,
        period_end_ts=calculation.period.end_ts,
        network=calculation.network,
        snapshot_sha256=snapshot.sha256,
        snapshot_name=snapshot.path.name,
        code_version=CODE_VERSION,
        status=RunStatus.CALCULATED,
        total_musd=totals.musd,
        total_tft_units=totals.tft,
        payable_tft_units=payable,
        node_count=totals.nodes,
        rewarded_node_count=totals.rewarded_nodes,
        report_json=orjson.dumps(report_document(calculation)).decode(),
        replaces_run_id=replaces.id if replaces else None,
        rehearsal=rehearsal,
        created_at=now,
        updated_at=now,
    )
    session.add(run)
    session.flush()
    repository.add_receipts(session, _receipt_rows(id_of(run), calculation.receipts))
    repository.add_payments(session, _payment_rows(session, run, now))
    farm_addresses = {farm.farm_id: farm.stellar_address for farm in snapshot.header.farms}
    repository.add_payments(session, retry_rows(session, run, farm_addresses, now, max_retries))
    join_corrections(session, run)
    record_event(
        session,
        entity="runs",
        entity_id=run.id,
        run_id=run.id,
        event="run.calculated",
        to_status=RunStatus.CALCULATED,
        detail={"snapshot_sha256": snapshot.sha256, "total_tft_units": totals.tft, "rehearsal": rehearsal},
    )
    return run


def _payment_rows(session: Session, run: Run, now) -> Iterable[dict]:
    """One payment per positive reward: payable now (in the manifest) or held for its address."""
    # the columns a payment needs, not whole receipts (their bytes): thousands of rows
    fields = (
        col(Receipt.id),
        col(Receipt.receipt_hash),
        col(Receipt.farm_id),
        col(Receipt.node_id),
        col(Receipt.stellar_payout_address),
        col(Receipt.reward_tft_units),
        col(Receipt.eligibility),
    )
    statement = sa_select(*fields).where(col(Receipt.run_id) == id_of(run)).order_by(col(Receipt.node_id))
    for receipt in session.connection().execute(statement).all():
        if receipt.reward_tft_units <= 0:
            continue  # a zero reward never becomes a payment
        held = receipt.eligibility in HELD_ELIGIBILITY
        if receipt.eligibility != PAYABLE_ELIGIBILITY and not held:
            continue
        yield {
            "run_id": run.id,
            "receipt_id": receipt.id,
            "kind": PaymentKind.RECEIPT,
            "idempotency_key": f"receipt:{run.id}:{receipt.receipt_hash}",
            "receipt_hash": receipt.receipt_hash,
            "farm_id": receipt.farm_id,
            "node_id": receipt.node_id,
            "destination": receipt.stellar_payout_address,
            "amount_tft_units": receipt.reward_tft_units,
            "status": PaymentStatus.HELD if held else PaymentStatus.PENDING,
            "hold_reason": receipt.eligibility if held else "",
            "in_manifest": not held,
            "payout_basis": PayoutBasis.POC_TREASURY,
            "created_at": now,
            "updated_at": now,
        }


def _receipt_rows(run_id: int, receipts: Iterable) -> Iterable[dict]:
    for receipt in receipts:
        row = {name: getattr(receipt, name) for name in _RECEIPT_COLUMNS}
        row["run_id"] = run_id
        yield row


def require_run(session: Session, run_id: int) -> Run:
    run = repository.get_run(session, run_id)
    if run is None:
        raise RunNotFound(run_id)
    return run


class ReceiptFields(Protocol):
    """What the calculation document reads of a receipt: a calculated one or a recorded one."""

    @property
    def node_id(self) -> int: ...
    @property
    def farm_id(self) -> int: ...
    @property
    def measured_uptime_s(self) -> int: ...
    @property
    def uptime_permille(self) -> int: ...
    @property
    def violation(self) -> str | None: ...
    @property
    def eligibility(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def reward_musd(self) -> int: ...
    @property
    def reward_tft_units(self) -> int: ...
    @property
    def receipt_hash(self) -> str: ...
    @property
    def stellar_payout_address(self) -> str: ...


def calculation_document(
    period: Period, run_id: int | None, snapshot_sha256: str, receipts: Iterable[ReceiptFields]
) -> dict:
    """The `payouts calculate --json` document (SPEC 4.3); receipts sorted by node id."""
    rows = []
    total_musd = total_tft_units = rewarded = 0
    for r in sorted(receipts, key=lambda r: r.node_id):
        total_musd += r.reward_musd
        total_tft_units += r.reward_tft_units
        rewarded += r.reward_tft_units > 0
        rows.append(
            {
                "node_id": r.node_id,
                "farm_id": r.farm_id,
                "measured_uptime": r.measured_uptime_s,
                "uptime_permille": r.uptime_permille,
                "violation": r.violation,
                "eligibility": str(r.eligibility),
                "reason": r.reason,
                "reward": {"musd": r.reward_musd, "tft": r.reward_tft_units},
                "hash": r.receipt_hash,
                "stellar_payout_address": r.stellar_payout_address,
            }
        )
    return {
        "period": {"offset": period.offset, "start": period.start_ts, "end": period.end_ts},
        "run_id": run_id,
        "snapshot_sha256": snapshot_sha256,
        "receipts": rows,
        "totals": {
            "musd": total_musd,
            "tft": total_tft_units,
            "nodes": len(rows),
            "rewarded_nodes": rewarded,
        },
    }
