"""Thin tasks: open a session (PayoutTask), call a service, return a small summary.

Task names are stable strings: old and new workers share a queue during a deploy. Tasks take
ids, never wait on each other, and may queue the next step. Money moves only in `pay_run`,
through the payment engine's exactly-once rules; a doubled or redelivered task finds the work
done in the ledger and changes nothing.
"""

from __future__ import annotations

import httpx
import structlog
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from payouts.ledger.models import Run
from payouts.ledger.states import RunStatus
from payouts.runs.payment import PaymentEngine, RunBusy, RunNotPayable, RunStopped
from payouts.runs.service import calculate_run
from payouts.runs.wiring import build_orchestrator, horizon, pay_config, signing_keys
from payouts.snapshot.load import load_snapshot
from payouts.sources.errors import IndexerUnreachable
from payouts.stellar.horizon import HorizonUnavailable
from workers.base import PayoutTask
from workers.celery_app import app

log = structlog.get_logger(__name__)

#: transient trouble (Horizon, the indexer or the ledger unreachable) is retried with backoff, a
#: few times; after that the next daily trigger tries again
TRANSIENT = (
    ConnectionError,
    TimeoutError,
    OSError,
    HorizonUnavailable,
    IndexerUnreachable,
    httpx.TransportError,
    OperationalError,
)


@app.task(base=PayoutTask, name="payouts.runs.calculate")
def calculate_snapshot(session: Session, snapshot_path: str) -> dict:
    outcome = calculate_run(session, load_snapshot(snapshot_path))
    return {"run_id": outcome.run.id, "created": outcome.created, "status": outcome.run.status}


@app.task(base=PayoutTask, name="payouts.advance_due")
def advance_due(session: Session) -> dict:
    """The daily trigger: queue one `advance_period` per due period of the program."""
    periods = build_orchestrator(app.conf.payouts_settings, advance_due.engine).due_periods()
    for period in periods:
        advance_period.delay(period.offset)
    log.info("reconciler.triggered", periods=[p.label for p in periods])
    return {"periods": [p.offset for p in periods]}


@app.task(
    base=PayoutTask,
    name="payouts.advance_period",
    autoretry_for=TRANSIENT,
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=5,
)
def advance_period(session: Session, period_offset: int) -> dict:
    """Bring one period forward until it waits; payment is queued as its own task."""

    def queue_payment(run_id: int) -> str:
        pay_run.delay(run_id)
        return session.get(Run, run_id).status

    orchestrator = build_orchestrator(app.conf.payouts_settings, advance_period.engine, pay=queue_payment)
    step = orchestrator.advance(period_offset)
    log.info("period.advanced", **step.as_dict())
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
def pay_run(self, session: Session, run_id: int) -> dict:
    """Pay a run for one time budget; queue the next slice, or the next step once paid."""
    settings = app.conf.payouts_settings
    run = session.get(Run, run_id)
    with horizon(settings) as client:
        engine = PaymentEngine(self.engine, client, signing_keys(settings), pay_config(settings, run.network))
        try:
            report = engine.pay(run_id, budget_s=settings.pay_task_budget_s)
        except RunBusy:
            # another worker holds the run; if it died its lease lapses and this comes back
            raise self.retry(countdown=settings.lease_ttl_s, max_retries=20) from None
        except (RunNotPayable, RunStopped) as exc:
            # waits for approvals, funding or an operator: nothing to retry
            log.warning("run.pay.not_now", run_id=run_id, reason=str(exc))
            return {"run_id": run_id, "status": session.get(Run, run_id).status, "reason": str(exc)}
    if report.status == RunStatus.PAYING and report.reason != "paused":
        pay_run.delay(run_id)
    elif report.status == RunStatus.PAID:
        advance_period.delay(run.period_offset)
    return {
        "run_id": run_id,
        "status": report.status,
        "paid": report.paid,
        "held": report.held,
        "reason": report.reason,
    }
