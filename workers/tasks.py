"""Thin tasks: open a unit of work (PayoutTask), call a service, return a small summary.

Task names are stable strings: old and new workers share a queue during a deploy. Tasks take
ids, never wait on each other, and queue the next step on their unit of work: it is sent only
once the task committed. Money moves only in `pay_run`, through the payment engine's
exactly-once rules; a doubled or redelivered task finds the work done in the ledger and
changes nothing.
"""

from __future__ import annotations

from functools import partial

import httpx
import structlog
from sqlalchemy.exc import DisconnectionError, OperationalError

from payouts.ledger.repository import OFF_CYCLE_RUN
from payouts.ledger.states import RunStatus
from payouts.ledger.unit_of_work import UnitOfWork
from payouts.runs.payment import PaymentEngine, RunBusy, RunNotPayable, RunStopped
from payouts.runs.retries_now import NothingToRetry, open_off_cycle_run
from payouts.runs.service import calculate_run, require_run
from payouts.snapshot.load import load_snapshot
from payouts.sources.errors import IndexerUnreachable
from payouts.stellar.horizon import HorizonUnavailable
from payouts.stellar.keys import KeyFileError
from payouts.wiring import build_monthly_job, horizon, pay_config, signing_keys
from workers.base import PayoutTask
from workers.celery_app import app

log = structlog.get_logger(__name__)

#: transient trouble is the network's or the database's (Horizon, the indexer or the ledger
#: unreachable): retried with backoff, a few times; after that the next daily trigger tries
#: again. Anything else, such as a missing or unreadable key file, fails the task at once.
TRANSIENT: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    HorizonUnavailable,
    IndexerUnreachable,
    httpx.TransportError,
    OperationalError,
    DisconnectionError,
)


def is_transient(error: BaseException) -> bool:
    return isinstance(error, TRANSIENT)


@app.task(base=PayoutTask, name="payouts.runs.calculate")
def calculate_snapshot(uow: UnitOfWork, snapshot_path: str) -> dict:
    limit = app.conf.payouts_settings.snapshot_max_bytes
    outcome = calculate_run(uow.session, load_snapshot(snapshot_path, max_decompressed_bytes=limit))
    run = outcome.run
    return {"run_id": run.id if run else None, "created": outcome.created, "status": run.status if run else None}


def _monthly_job(task: PayoutTask, uow: UnitOfWork) -> dict:
    """The daily trigger: queue one `advance_period` per due period of the program."""
    periods = build_monthly_job(app.conf.payouts_settings, task.engine).due_periods()
    for period in periods:
        uow.after_commit(partial(advance_period.delay, period.offset))
    # an open off-cycle run moves on by itself too, once approved (and funded)
    off_cycle = open_off_cycle_run(uow.session)
    if off_cycle is not None:
        uow.after_commit(partial(advance_run.delay, off_cycle.id))
    log.info("monthly_job.triggered", periods=[p.label for p in periods], off_cycle_run=off_cycle and off_cycle.id)
    return {"periods": [p.offset for p in periods], "off_cycle_run": off_cycle.id if off_cycle else None}


monthly_job = app.task(base=PayoutTask, bind=True, name="payouts.monthly_job")(_monthly_job)
#: the monthly job's task name before it was `payouts.monthly_job`: a message queued under it
#: before a deploy (or fired by a beat entry saved then) still runs the same job
monthly_job_under_old_name = app.task(base=PayoutTask, bind=True, name="payouts.advance_due")(_monthly_job)


@app.task(
    base=PayoutTask,
    name="payouts.advance_period",
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=5,
)
def advance_period(uow: UnitOfWork, period_offset: int, rehearsal: bool = False) -> dict:
    """Bring one period forward until it waits; payment is queued as its own task (`rehearsal`:
    calculate before the inputs are complete, on the sandbox network only).

    Each move of the period commits on its own (the monthly job takes the task's factory); the
    payment task is sent once this task's unit of work committed.
    """

    def queue_payment(run_id: int) -> str:
        uow.after_commit(partial(pay_run.delay, run_id))
        return require_run(uow.session, run_id).status

    monthly_job = build_monthly_job(app.conf.payouts_settings, advance_period.engine, pay=queue_payment)
    step = monthly_job.advance(period_offset, rehearsal=rehearsal)
    log.info("period.advanced", **step.as_dict())
    return step.as_dict()


def _queueing_monthly_job(uow: UnitOfWork, engine):
    def queue_payment(run_id: int) -> str:
        uow.after_commit(partial(pay_run.delay, run_id))
        return require_run(uow.session, run_id).status

    return build_monthly_job(app.conf.payouts_settings, engine, pay=queue_payment)


@app.task(base=PayoutTask, name="payouts.advance_run", autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def advance_run(uow: UnitOfWork, run_id: int) -> dict:
    """Bring one run (an off-cycle run of retries) forward until it waits; payment is queued."""
    step = _queueing_monthly_job(uow, advance_run.engine).advance_run(run_id)
    log.info("run.advanced", **step.as_dict())
    return step.as_dict()


@app.task(base=PayoutTask, name="payouts.retries_now", autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def retries_now(uow: UnitOfWork) -> dict:
    """`payouts run --retries-now`: the open off-cycle run forward, or a new one of the held
    payments whose destinations can receive now."""
    try:
        step = _queueing_monthly_job(uow, retries_now.engine).retries_now()
    except NothingToRetry as exc:
        log.info("retries_now.nothing", reason=str(exc))
        return {"run_id": None, "did": [], "waits_for": str(exc)}
    log.info("run.advanced", **step.as_dict())
    return step.as_dict()


@app.task(
    base=PayoutTask,
    name="payouts.pay_run",
    bind=True,
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=5,
)
def pay_run(self, uow: UnitOfWork, run_id: int) -> dict:
    """Pay a run for one time budget; queue the next slice, or the next step once paid."""
    settings = app.conf.payouts_settings
    # read in a unit of its own: the task's unit must not sit open (idle in transaction) while
    # the engine waits on the network for the whole time budget
    with self.units() as reading:
        run = require_run(reading.session, run_id)
        network, period_offset = run.network, run.period_offset
    try:
        keys = signing_keys(settings)
    except KeyFileError as exc:
        # not transient: retrying cannot make a key file appear; an operator has to fix it
        log.error("run.pay.keys_unusable", run_id=run_id, reason=str(exc))
        raise
    with horizon(settings) as client:
        engine = PaymentEngine(self.units, client, keys, pay_config(settings, network))
        try:
            report = engine.pay(run_id, budget_s=settings.pay_task_budget_s)
        except RunBusy:
            # another worker holds the run; if it died its lease lapses and this comes back
            raise self.retry(countdown=settings.lease_ttl_s, max_retries=20) from None
        except (RunNotPayable, RunStopped) as exc:
            # waits for approvals, funding or an operator: nothing to retry
            log.warning("run.pay.not_now", run_id=run_id, reason=str(exc))
            return {"run_id": run_id, "status": require_run(uow.session, run_id).status, "reason": str(exc)}
    if report.status == RunStatus.PAYING and report.reason != "paused":
        uow.after_commit(partial(pay_run.delay, run_id))
    elif report.status == RunStatus.PAID and run.kind == OFF_CYCLE_RUN:
        uow.after_commit(partial(advance_run.delay, run_id))
    elif report.status == RunStatus.PAID:
        uow.after_commit(partial(advance_period.delay, period_offset))
    return {
        "run_id": run_id,
        "status": report.status,
        "paid": report.paid,
        "held": report.held,
        "reason": report.reason,
    }
