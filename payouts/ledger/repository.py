"""Every query of the ledger, so services read like the SPEC and SQL stays in one place."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from sqlalchemy import insert
from sqlmodel import Session, col, select

from payouts.ledger.errors import LedgerError
from payouts.ledger.kinds import RunKind
from payouts.ledger.models import Approval, Payment, Receipt, Run
from payouts.ledger.states import LIVE_RUN_STATUSES

#: Run.kind of a period's calculation; an off-cycle run of retries is OFF_CYCLE_RUN
MONTHLY_RUN = RunKind.MONTHLY
OFF_CYCLE_RUN = RunKind.OFF_CYCLE


class _Row(Protocol):
    @property
    def id(self) -> int | None: ...


def id_of(row: _Row) -> int:
    """The id of a row that is in the ledger (read from it, or added and flushed): the
    database gave it one, so None here means a row that was never written."""
    if row.id is None:
        raise LedgerError(f"{type(row).__name__} has no id: it was never written to the ledger")
    return row.id


def get_run(session: Session, run_id: int) -> Run | None:
    return session.get(Run, run_id)


def live_run_for_period(session: Session, period_offset: int) -> Run | None:
    """The period's own (monthly) live run; off-cycle runs of retries are not it."""
    statement = select(Run).where(
        Run.period_offset == period_offset, col(Run.status).in_(LIVE_RUN_STATUSES), Run.kind == MONTHLY_RUN
    )
    return session.exec(statement).first()


def previous_live_run(session: Session, run: Run) -> Run | None:
    """The live run of the period before `run`'s, if any (for review comparisons)."""
    return live_run_for_period(session, run.period_offset - 1)


def list_runs(session: Session, *, period_offset: int | None = None) -> Sequence[Run]:
    statement = select(Run).order_by(col(Run.period_offset).desc(), col(Run.id).desc())
    if period_offset is not None:
        statement = statement.where(Run.period_offset == period_offset)
    return session.exec(statement).all()


def add_receipts(session: Session, rows: Iterable[dict]) -> None:
    """Bulk insert (executemany): thousands of receipts in one statement batch. Every row has
    the same keys, so the table's own insert takes them (no ORM bookkeeping per row)."""
    rows = list(rows)
    if rows:
        session.connection().execute(insert(Receipt.__table__), rows)  # type: ignore[attr-defined]


def receipts_of_run(session: Session, run_id: int) -> Sequence[Receipt]:
    statement = select(Receipt).where(Receipt.run_id == run_id).order_by(col(Receipt.node_id))
    return session.exec(statement).all()


def receipts_by_hash(session: Session, receipt_hash: str) -> Sequence[Receipt]:
    statement = select(Receipt).where(Receipt.receipt_hash == receipt_hash.lower()).order_by(col(Receipt.id))
    return session.exec(statement).all()


def add_payments(session: Session, rows: Iterable[dict]) -> None:
    rows = list(rows)
    if rows:
        session.execute(insert(Payment), rows)


def payments_of_run(session: Session, run_id: int) -> Sequence[Payment]:
    statement = select(Payment).where(Payment.run_id == run_id).order_by(col(Payment.id))
    return session.exec(statement).all()


def manifest_payments(session: Session, run_id: int) -> Sequence[Payment]:
    statement = (
        select(Payment).where(Payment.run_id == run_id, col(Payment.in_manifest).is_(True)).order_by(col(Payment.id))
    )
    return session.exec(statement).all()


def approvals_of_run(session: Session, run_id: int) -> Sequence[Approval]:
    statement = select(Approval).where(Approval.run_id == run_id).order_by(col(Approval.id))
    return session.exec(statement).all()
