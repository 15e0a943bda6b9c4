"""The monthly job: bring every due period one state forward (SPEC 8).

Beat fires `payouts.monthly_job` daily. It looks at every period of the transition program whose
post-period window has closed and does the next thing that period needs: freeze its inputs and
calculate, remind approvers, pay, reconcile, export. Each step is idempotent and reads the
ledger first, so a missed, late or doubled trigger does no harm and a period is calculated
once. Waiting states (approvals, funding, an operator after a stop, the pause switch) are left
alone: the monthly job only says what they wait for.

The orchestration is plain Python: Celery tasks and `payouts run --in-process` call the same
functions, and payment is handed to a callback so that workers can queue it as its own task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import httpx
import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from payouts.clock import Clock, SystemClock
from payouts.ledger import repository
from payouts.ledger.events import record_event
from payouts.ledger.models import LedgerEvent, Run
from payouts.ledger.repository import id_of
from payouts.ledger.states import PAYABLE_RUN_STATUSES, SETTLED_RUN_STATUSES, RunStatus, transition
from payouts.ledger.types import utcnow
from payouts.ledger.unit_of_work import UnitOfWork, UnitOfWorkFactory
from payouts.periods import Period
from payouts.runs.approvals import valid_approvals
from payouts.runs.completeness import PeriodIncomplete, require_complete
from payouts.runs.control import pause_state
from payouts.runs.errors import RunsError
from payouts.runs.retries_now import (
    HoldCheck,
    current_addresses,
    open_off_cycle_run,
    outstanding_held,
    record_off_cycle_run,
    select_receivable,
)
from payouts.runs.service import calculate_run
from payouts.snapshot.load import DEFAULT_MAX_DECOMPRESSED_BYTES, load_snapshot

log = structlog.get_logger(__name__)

REMIND_EVERY = timedelta(hours=23)  # a daily trigger reminds once a day, a doubled one not twice


class InputsUnavailable(RunsError):
    """The period's inputs cannot be frozen yet (no drop file, indexer behind): try later."""


class Freezer(Protocol):
    def __call__(self, period_offset: int) -> Path: ...


@dataclass(frozen=True)
class ProgramWindow:
    """The periods paid from the treasury: from `first_offset` to `last_offset` (open if None)."""

    first_offset: int
    last_offset: int | None = None

    def __contains__(self, offset: int) -> bool:
        return offset >= self.first_offset and (self.last_offset is None or offset <= self.last_offset)

    def due(self, now_ts: int) -> list[Period]:
        """Periods in the window whose post-period window has closed by `now_ts`."""
        periods = []
        offset = self.first_offset
        while (self.last_offset is None or offset <= self.last_offset) and Period(offset).window_end_ts <= now_ts:
            periods.append(Period(offset))
            offset += 1
        return periods


@dataclass
class Step:
    """What one call did for a period, and what the period waits for now."""

    period: str
    run_id: int | None
    did: list[str] = field(default_factory=list)
    status: str = ""
    waits_for: str = ""

    def as_dict(self) -> dict:
        return {
            "period": self.period,
            "run_id": self.run_id,
            "did": self.did,
            "status": self.status,
            "waits_for": self.waits_for,
        }


@dataclass
class MonthlyJob:
    """Advances periods. `pay(run_id)` pays (or queues the payment of) a run and returns the
    run's status afterwards; `reconcile(session, run)` and `export(session, run)` do those
    steps in the session they are handed; `freeze(offset)` returns a frozen snapshot file or
    raises InputsUnavailable.

    It takes a unit-of-work factory: each move of a period (calculate, remind, reconcile,
    export, alert) is one unit of work, committed before the next move reads the ledger, and
    alerts go out only once their move is committed.
    """

    units: UnitOfWorkFactory
    window: ProgramWindow
    freeze: Freezer
    pay: Callable[[int], str]
    reconcile: Callable[[Session, Run], None]
    export: Callable[[Session, Run], str]
    approvers: tuple[str, ...] = ()
    approvals_required: int = 2
    two_tier: bool = False
    max_retries: int | None = None
    webhook_url: str | None = None
    #: the setting PAYOUTS_SNAPSHOT_MAX_BYTES: a frozen file decompressing to more is refused
    snapshot_max_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES
    #: the preflight's destination checks, for choosing the retries an off-cycle run can pay
    holds: HoldCheck | None = None
    #: the product's network (settings): a rehearsal is allowed on the sandbox ("dev") only
    network: str = "dev"
    #: whose time says a period's inputs are complete (the chain's, from the wiring)
    clock: Clock = field(default_factory=SystemClock)
    #: two-tier: return what a reconciled run's funding left to the treasury (own units of work)
    sweep: Callable[[int], object] | None = None

    # -- the daily trigger -------------------------------------------------------------------

    def due_periods(self, now: datetime | None = None) -> list[Period]:
        """Periods whose window closed by `now` (the clock's time by default), and periods of
        rehearsal runs still on their way (a rehearsal goes the whole way like any run)."""
        due = self.window.due(int((now or self.clock.now()).timestamp()))
        with self.units() as uow:
            rehearsing = uow.session.exec(
                select(Run.period_offset).where(
                    col(Run.rehearsal).is_(True), col(Run.status).not_in(SETTLED_RUN_STATUSES)
                )
            ).all()
        offsets = {p.offset for p in due}
        return due + [Period(offset) for offset in sorted(set(rehearsing)) if offset not in offsets]

    def advance_due(self, now: datetime | None = None) -> list[Step]:
        return [self.advance(period.offset) for period in self.due_periods(now)]

    # -- one period --------------------------------------------------------------------------

    def advance(self, period_offset: int, *, max_steps: int = 8, rehearsal: bool = False) -> Step:
        """Move the period forward until it waits for something (or `max_steps` moves).

        A period without a run is calculated only once its inputs are complete by the clock;
        `rehearsal` (sandbox network only) calculates it earlier, as a run marked rehearsal."""
        period = Period(period_offset)
        step = Step(period=period.label, run_id=None)
        if period_offset not in self.window:
            step.waits_for = "nothing: outside the transition program (settings first_period/last_period)"
            return step
        structlog.contextvars.bind_contextvars(period=period.label)
        for _ in range(max_steps):
            if not self._advance_once(period, step, rehearsal):
                break
        return step

    def retries_now(self) -> Step:
        """`payouts run --retries-now`: advance the open off-cycle run, or make one of the
        outstanding retries whose destinations can receive now (it then waits for its review
        and approvals). Raises NothingToRetry when there is nothing to pay now."""
        created = 0
        try:
            with self.units() as uow:
                session = uow.session
                run = open_off_cycle_run(session)
                if run is None:
                    if self.holds is None:
                        raise RunsError("off-cycle runs need the destination checks (a Horizon client)")
                    # a few account reads; at most one open off-cycle run (a unique index) makes
                    # a second caller's insert fail rather than retry the same payments twice
                    selection = select_receivable(
                        session,
                        outstanding_held(session),
                        current_addresses(session),
                        self.holds,
                        max_retries=self.max_retries,
                    )
                    run = record_off_cycle_run(session, selection, utcnow())
                    created = run.node_count
                run_id = id_of(run)
        except IntegrityError:
            raise RunsError("another off-cycle run was made at the same time; see payouts runs") from None
        step = self.advance_run(run_id)
        if created:
            step.did.insert(0, f"off-cycle run of {created} retries")
        return step

    def advance_run(self, run_id: int, *, max_steps: int = 8) -> Step:
        """Move one run forward (an off-cycle run of retries) until it waits; never calculates."""
        with self.units() as uow:
            run = uow.session.get(Run, run_id)
            if run is None:
                raise RunsError(f"run {run_id} is not in the ledger")
            period = Period(run.period_offset)
        step = Step(period=period.label, run_id=run_id)
        for _ in range(max_steps):
            if not self._advance_once(period, step, only_run=run_id):
                break
        return step

    def _advance_once(
        self, period: Period, step: Step, rehearsal: bool = False, *, only_run: int | None = None
    ) -> bool:
        """One move; False when the period (or the run `only_run`) waits."""
        with self.units() as uow:
            session = uow.session
            if only_run is None:
                run = repository.live_run_for_period(session, period.offset)
            else:
                run = session.get(Run, only_run)
            if run is not None:
                run_id = id_of(run)
                # what it waits for, in the words `payouts runs` uses
                step.waits_for = describe_wait(
                    session,
                    run,
                    approvers=list(self.approvers),
                    approvals_required=self.approvals_required,
                    two_tier=self.two_tier,
                )
                step.run_id, step.status = run_id, run.status
                structlog.contextvars.bind_contextvars(run_id=run_id)
                status = RunStatus(run.status)
                if not status.is_payable:
                    return self._move(uow, run, status, step)
                if (status is RunStatus.APPROVED and self.two_tier) or pause_state(session).paused:
                    return False
        # freezing inputs and paying reach out of the process: no unit of work is held open
        if run is None:
            return self._calculate(period, step, rehearsal)
        return self._pay(run_id, step)

    def _move(self, uow: UnitOfWork, run: Run, status: RunStatus, step: Step) -> bool:
        """A move within the ledger (and the chain's read side): in the caller's unit of work.

        The step for each status is in `LADDER`; True when it moved the run on. A status
        without a step waits, in the words `describe_wait` gave the step already."""
        move = LADDER.get(status)
        return move(self, uow, run, step) if move is not None else False

    def _reconcile(self, uow: UnitOfWork, run: Run, step: Step) -> bool:
        session = uow.session
        run_id = id_of(run)
        self.reconcile(session, run)
        step.did.append("reconcile")
        # still paid: Horizon is behind the run's ledgers; the next trigger reconciles again
        after = session.get(Run, run_id, populate_existing=True)
        if after is None or after.status == RunStatus.PAID:
            return False
        if self.sweep is not None and after.status == RunStatus.RECONCILED:
            sweep = self.sweep
            uow.after_commit(lambda: sweep(run_id))  # sends a transaction: only once on record
        return True

    def _export(self, uow: UnitOfWork, run: Run, step: Step) -> bool:
        session = uow.session
        location = self.export(session, run)
        transition(
            session,
            Run,
            id_of(run),
            RunStatus.RECONCILED,
            RunStatus.EXPORTED,
            event="run.exported",
            detail={"location": location},
        )
        uow.after_commit(lambda: log.info("run.exported", location=location))
        step.did.append("export")
        return True

    def _pay(self, run_id: int, step: Step) -> bool:
        after = self.pay(run_id)
        step.did.append("pay")
        step.status = after
        if after in PAYABLE_RUN_STATUSES:
            step.waits_for = RunStatus.PAYING.waits_for
            return False
        return after in (RunStatus.PAID, RunStatus.STOPPED)

    def _calculate(self, period: Period, step: Step, rehearsal: bool = False) -> bool:
        try:
            # the snapshot says its network; before freezing, the product's network is what counts
            require_complete(period, self.clock, network=self.network, rehearsal=rehearsal)
        except PeriodIncomplete as exc:
            step.waits_for = f"inputs: {exc}"
            log.info("period.inputs.incomplete", reason=str(exc))
            return False
        try:
            path = self.freeze(period.offset)
        except InputsUnavailable as exc:
            step.waits_for = f"inputs: {exc}"
            log.info("period.inputs.unavailable", reason=str(exc))
            return False
        snapshot = load_snapshot(path, max_decompressed_bytes=self.snapshot_max_bytes)
        with self.units() as uow:
            record_event(
                uow.session,
                entity="periods",
                entity_id=period.offset,
                run_id=None,
                event="period.inputs_frozen",
                detail={"snapshot": path.name, "snapshot_sha256": snapshot.sha256},
            )
            outcome = calculate_run(
                uow.session, snapshot, max_retries=self.max_retries, clock=self.clock, rehearsal=rehearsal
            )
        if outcome.run is None:
            raise RunsError(f"period {period.label}: the calculation recorded no run")
        step.did.append("calculate" if outcome.created else "calculate (already done)")
        step.run_id = outcome.run.id
        return True

    # -- waiting states ----------------------------------------------------------------------

    def _remind_approvers(self, uow: UnitOfWork, run: Run, step: Step) -> bool:
        """Waits for the approvals; reminds the approvers at most every REMIND_EVERY."""
        session = uow.session
        run_id = id_of(run)
        count = len(valid_approvals(session, run, list(self.approvers)))
        if _recent_event(session, run_id, "run.approvals.reminded", REMIND_EVERY):
            return False
        summary = {
            "run_id": run_id,
            "period": step.period,
            "total_tft_units": run.total_tft_units,
            "payable_tft_units": run.payable_tft_units,
            "nodes": run.node_count,
            "rewarded_nodes": run.rewarded_node_count,
            "approvals": count,
            "approvals_required": self.approvals_required,
        }
        record_event(
            session, entity="runs", entity_id=run_id, run_id=run_id, event="run.approvals.reminded", detail=summary
        )
        step.did.append("remind approvers")

        def remind() -> None:
            log.warning("run.approvals.reminder", **summary)
            self._webhook("run.awaiting_approval", summary)

        uow.after_commit(remind)
        return False

    def _alert_stopped(self, uow: UnitOfWork, run: Run, step: Step) -> bool:
        """Waits for an operator; alerts at most every REMIND_EVERY."""
        session = uow.session
        run_id = id_of(run)
        if _recent_event(session, run_id, "run.stopped.alerted", REMIND_EVERY):
            return False
        reason = run.status_reason
        record_event(
            session,
            entity="runs",
            entity_id=run_id,
            run_id=run_id,
            event="run.stopped.alerted",
            detail={"reason": reason},
        )

        def alert() -> None:
            log.error("run.stopped.alert", reason=reason)
            self._webhook("run.stopped", {"run_id": run_id, "period": step.period, "reason": reason})

        uow.after_commit(alert)
        return False

    def _webhook(self, event: str, payload: dict) -> None:
        if not self.webhook_url:
            return
        try:
            httpx.post(self.webhook_url, json={"event": event, **payload}, timeout=10).raise_for_status()
        except httpx.HTTPError as exc:  # an alert channel being down must not stop the run
            log.warning("alert.webhook.failed", alert=event, error=type(exc).__name__)


#: the monthly job's step ladder: what it does for a run in each status within the ledger
#: (a payable run is paid by `_pay`, outside any unit of work); every other status waits
LADDER: dict[RunStatus, Callable[[MonthlyJob, UnitOfWork, Run, Step], bool]] = {
    RunStatus.CALCULATED: MonthlyJob._remind_approvers,
    RunStatus.PAID: MonthlyJob._reconcile,
    RunStatus.RECONCILED: MonthlyJob._export,
    RunStatus.STOPPED: MonthlyJob._alert_stopped,
}


def _recent_event(session: Session, run_id: int, event: str, within: timedelta) -> bool:
    latest = session.exec(
        select(LedgerEvent.occurred_at)
        .where(LedgerEvent.run_id == run_id, LedgerEvent.event == event)
        .order_by(col(LedgerEvent.id).desc())
        .limit(1)
    ).first()
    return latest is not None and utcnow() - latest < within


# -- operators ---------------------------------------------------------------------------


def describe_wait(session: Session, run: Run, *, approvers: list[str], approvals_required: int, two_tier: bool) -> str:
    """What the run waits for, in words an operator can act on."""
    status = RunStatus(run.status)
    if status is RunStatus.CALCULATED:
        count = len(valid_approvals(session, run, approvers))
        return f"approvals: {count} of {approvals_required} (payouts show {run.id}; payouts approve {run.id})"
    if status is RunStatus.STOPPED:
        return f"an operator: {run.status_reason} (then payouts continue {run.id})"
    if status is RunStatus.APPROVED and two_tier:
        return f"funding: payouts funding export {run.id}, sign and submit"
    if status is RunStatus.FUNDING:
        return "the funding transaction to land (payouts funding submit)"
    paused = pause_state(session)
    if paused.paused and status.is_payable:
        return f"payouts resume (paused: {paused.reason})"
    return status.waits_for


def continue_run(session: Session, run: Run, *, accept_differences: str | None = None) -> str:
    """Take a stopped run back to where it stopped; returns the status it continues from.

    A run stopped by a reconciliation mismatch goes back to `paid` to be reconciled again, or,
    with `accept_differences` (the operator's reason), on to `reconciled` with the reason on
    record. Nothing is ever paid again to make a difference go away.
    """
    if RunStatus(run.status) is not RunStatus.STOPPED:
        raise RunsError(f"run {run.id} is {run.status}, not stopped; nothing to continue")
    stopped = session.exec(
        select(LedgerEvent)
        .where(LedgerEvent.run_id == run.id, LedgerEvent.event == "run.stopped")
        .order_by(col(LedgerEvent.id).desc())
        .limit(1)
    ).first()
    stopped_from = RunStatus(stopped.from_status) if stopped and stopped.from_status else RunStatus.PAYING
    target = stopped_from
    if accept_differences is not None:
        if stopped_from is not RunStatus.PAID:
            raise RunsError("--accept-differences only applies to a run stopped by reconciliation")
        if not accept_differences.strip():
            raise RunsError("accepting differences needs a reason")
        target = RunStatus.RECONCILED
    transition(
        session,
        Run,
        id_of(run),
        RunStatus.STOPPED,
        target,
        event="run.continued",
        detail={"stopped_for": run.status_reason, "accepted_differences": accept_differences},
        status_reason="",
    )
    session.refresh(run)
    log.info("run.continued", run_id=run.id, status=target)
    return target
