"""The engine's reads of the ledger, and stopping a run on record."""

from __future__ import annotations

import structlog
from sqlmodel import Session, col, select

from payouts.ledger.kinds import TransactionPurpose
from payouts.ledger.models import Payment, Run, StellarTransaction
from payouts.ledger.repository import id_of
from payouts.ledger.states import PaymentStatus, RunStatus, TransactionStatus, transition

log = structlog.get_logger(__name__)


def payments(session: Session, run_id: int, status: PaymentStatus, limit: int | None = None) -> list[Payment]:
    # only what the approvers signed: an entry recorded after the manifest (a correction)
    # waits for the next run's approvals
    statement = (
        select(Payment)
        .where(Payment.run_id == run_id, Payment.status == status, col(Payment.in_manifest).is_(True))
        .order_by(col(Payment.id))
    )
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.exec(statement).all())


def live(session: Session, run_id: int) -> list[StellarTransaction]:
    statement = (
        select(StellarTransaction)
        .where(
            StellarTransaction.run_id == run_id,
            StellarTransaction.purpose == TransactionPurpose.PAYMENT,
            col(StellarTransaction.status).in_([TransactionStatus.BUILT, TransactionStatus.SUBMITTED]),
        )
        .order_by(col(StellarTransaction.id))
    )
    return list(session.exec(statement).all())


def stop_run(session: Session, run: Run, reason: str) -> None:
    status = RunStatus(run.status)
    if status is RunStatus.STOPPED:
        return
    transition(
        session,
        Run,
        id_of(run),
        status,
        RunStatus.STOPPED,
        event="run.stopped",
        detail={"reason": reason},
        status_reason=reason,
    )
    log.error("run.stopped", run_id=run.id, reason=reason)
