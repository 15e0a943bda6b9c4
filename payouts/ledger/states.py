"""Run statuses and their allowed transitions, as data next to the models.

`transition()` is a compare-and-set (`UPDATE ... WHERE status = :from`) plus an event row in the
same database transaction, so two workers racing on one row cannot both move it, and every move
leaves a trace. It works on SQLite, which ignores `FOR UPDATE`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col

from payouts.ledger.db import rowcount
from payouts.ledger.errors import InvalidTransition, StaleStatus
from payouts.ledger.events import record_event
from payouts.ledger.models import Payment, Run, StellarTransaction
from payouts.ledger.types import utcnow

#: the tables whose rows move through a status machine
StatusModel = type[Run] | type[Payment] | type[StellarTransaction]


class RunStatus(StrEnum):
    CALCULATED = "calculated"
    APPROVED = "approved"
    FUNDING = "funding"
    FUNDED = "funded"
    PAYING = "paying"
    PAID = "paid"
    RECONCILED = "reconciled"
    EXPORTED = "exported"
    REPLACED = "replaced"
    REJECTED = "rejected"
    STOPPED = "stopped"

    @property
    def is_live(self) -> bool:
        """A live run holds its period: at most one live run per period."""
        return self not in (RunStatus.REPLACED, RunStatus.REJECTED)

    @property
    def is_replaceable(self) -> bool:
        """Only a run nobody has approved yet may be replaced by a recalculation."""
        return self is RunStatus.CALCULATED

    @property
    def is_payable(self) -> bool:
        """Approved and not paid out yet: the payment engine may send its payments."""
        return self in (RunStatus.APPROVED, RunStatus.FUNDED, RunStatus.PAYING)

    @property
    def is_paid_or_after(self) -> bool:
        """Every payment of the run has an outcome on chain: nothing more is sent for it."""
        return self in (RunStatus.PAID, RunStatus.RECONCILED, RunStatus.EXPORTED)

    @property
    def is_settled(self) -> bool:
        """Nothing the monthly job does moves the run any more: exported, or not live."""
        return self is RunStatus.EXPORTED or not self.is_live

    @property
    def is_finished(self) -> bool:
        """Nothing more happens to the run's payments: reconciled (or after), or not live."""
        return self in (RunStatus.RECONCILED, RunStatus.EXPORTED) or not self.is_live

    @property
    def waits_for(self) -> str:
        return RUN_WAITS_FOR[self]


#: the statuses of live runs and of the others (replaced or rejected), for a query's `IN`
LIVE_RUN_STATUSES: tuple[RunStatus, ...] = tuple(status for status in RunStatus if status.is_live)
DEAD_RUN_STATUSES: tuple[RunStatus, ...] = tuple(status for status in RunStatus if not status.is_live)
PAYABLE_RUN_STATUSES: tuple[RunStatus, ...] = tuple(status for status in RunStatus if status.is_payable)
FINISHED_RUN_STATUSES: tuple[RunStatus, ...] = tuple(status for status in RunStatus if status.is_finished)
SETTLED_RUN_STATUSES: tuple[RunStatus, ...] = tuple(status for status in RunStatus if status.is_settled)

RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    # review done, enough valid approvals; a recalculation replaces; an operator may reject
    RunStatus.CALCULATED: frozenset({RunStatus.APPROVED, RunStatus.REPLACED, RunStatus.REJECTED}),
    # single tier goes straight to paying; two tier first funds the hot payout account
    # (a failed preflight stops an approved run before anything is sent)
    RunStatus.APPROVED: frozenset({RunStatus.FUNDING, RunStatus.PAYING, RunStatus.REJECTED, RunStatus.STOPPED}),
    # a funding transaction that provably expired sends the run back to be funded again
    RunStatus.FUNDING: frozenset({RunStatus.FUNDED, RunStatus.APPROVED, RunStatus.STOPPED}),
    RunStatus.FUNDED: frozenset({RunStatus.PAYING, RunStatus.STOPPED}),
    # underfunded or bad auth stops the run until an operator continues it
    RunStatus.PAYING: frozenset({RunStatus.PAID, RunStatus.STOPPED}),
    RunStatus.PAID: frozenset({RunStatus.RECONCILED, RunStatus.STOPPED}),
    RunStatus.RECONCILED: frozenset({RunStatus.EXPORTED}),
    RunStatus.EXPORTED: frozenset(),
    RunStatus.REPLACED: frozenset(),
    RunStatus.REJECTED: frozenset(),
    # an operator continues a stopped run where it stopped (payouts continue); a reconciliation
    # mismatch may be accepted with a reason on record, never paid again
    RunStatus.STOPPED: frozenset(
        {
            RunStatus.APPROVED,
            RunStatus.FUNDING,
            RunStatus.FUNDED,
            RunStatus.PAYING,
            RunStatus.PAID,
            RunStatus.RECONCILED,
            RunStatus.REJECTED,
        }
    ),
}

RUN_WAITS_FOR: dict[RunStatus, str] = {
    RunStatus.CALCULATED: "review and approvals",
    RunStatus.APPROVED: "payment (or funding in two-tier mode)",
    RunStatus.FUNDING: "the funding transaction to land",
    RunStatus.FUNDED: "payment",
    RunStatus.PAYING: "payments to be confirmed",
    RunStatus.PAID: "reconciliation with the chain",
    RunStatus.RECONCILED: "the farmer export",
    RunStatus.EXPORTED: "nothing (done)",
    RunStatus.REPLACED: "nothing (replaced by a recalculation)",
    RunStatus.REJECTED: "nothing (rejected)",
    RunStatus.STOPPED: "an operator (payouts continue RUN)",
}


def transition(
    session: Session,
    model: StatusModel,
    row_id: int,
    from_status: StrEnum,
    to_status: StrEnum,
    *,
    event: str,
    run_id: int | None = None,
    detail: dict | None = None,
    **values: Any,
) -> None:
    """Move one row from `from_status` to `to_status`, or raise.

    The allowed edges are the model's table in `TRANSITIONS`. Raises InvalidTransition when
    the edge is not in it and StaleStatus when the row is no longer in `from_status` (someone
    else moved it first).
    """
    table = _table_name(model)
    if to_status not in TRANSITIONS[model][from_status]:
        raise InvalidTransition(f"{table} {row_id}: {from_status} -> {to_status} is not allowed")
    result = session.execute(
        update(model)
        .where(col(model.id) == row_id, col(model.status) == from_status)
        .values(status=to_status, updated_at=utcnow(), **values)
    )
    if rowcount(result) != 1:
        raise StaleStatus(f"{table} {row_id} is no longer {from_status}")
    record_event(
        session,
        entity=table,
        entity_id=row_id,
        run_id=run_id if run_id is not None else row_id,
        event=event,
        from_status=str(from_status),
        to_status=str(to_status),
        detail=detail,
    )


class PaymentStatus(StrEnum):
    PENDING = "pending"  # calculated, waiting for the run's approvals and payment
    HELD = "held"  # cannot be paid now (address, trustline, account); retried later
    SUBMITTED = "submitted"  # in a live transaction whose outcome is not known yet
    PAID = "paid"  # the transaction that holds it is in a closed ledger, successful
    FAILED = "failed"  # its destination refused it for good in this run
    RETRIED = "retried"  # held, then paid again by a retry payment in a later run
    CORRECTED = "corrected"  # superseded by a correction entry
    #: sent as a claimable balance; paid out, waiting for the farmer to claim it
    CLAIMABLE = "claimable"

    @property
    def is_outstanding(self) -> bool:
        """Owed to the farmer and not paid yet."""
        return self in OUTSTANDING_PAYMENT_STATUSES

    @property
    def is_payable(self) -> bool:
        """The payment engine still sends it or waits for its transaction's outcome."""
        return self in PAYABLE_PAYMENT_STATUSES

    @property
    def is_settled(self) -> bool:
        """The money left the payout account for this entry (paid, claimable or since corrected)."""
        return self in SETTLED_PAYMENT_STATUSES

    @property
    def is_in_flight(self) -> bool:
        """In a live transaction whose outcome is not known yet."""
        return self in IN_FLIGHT_PAYMENT_STATUSES

    @property
    def is_held(self) -> bool:
        """Cannot be paid until the farmer fixes something."""
        return self in HELD_PAYMENT_STATUSES

    @property
    def is_owed(self) -> bool:
        """As a newest entry: owed to the farmer and not paid yet (a refusal included)."""
        return self in OWED_PAYMENT_STATUSES

    @property
    def is_on_chain(self) -> bool:
        """Paid out by its run and still standing: reconciliation finds it on chain (a payment or
        a claimable balance)."""
        return self in ON_CHAIN_PAYMENT_STATUSES

    @property
    def is_paid_or_landing(self) -> bool:
        """Paid, or in a transaction that may still land."""
        return self in PAID_OR_LANDING_PAYMENT_STATUSES


SETTLED_PAYMENT_STATUSES = frozenset({PaymentStatus.PAID, PaymentStatus.CORRECTED, PaymentStatus.CLAIMABLE})
IN_FLIGHT_PAYMENT_STATUSES = frozenset({PaymentStatus.SUBMITTED})
HELD_PAYMENT_STATUSES = frozenset({PaymentStatus.HELD, PaymentStatus.FAILED})
OWED_PAYMENT_STATUSES = frozenset(
    {PaymentStatus.PENDING, PaymentStatus.SUBMITTED, PaymentStatus.HELD, PaymentStatus.FAILED}
)
OUTSTANDING_PAYMENT_STATUSES = frozenset({PaymentStatus.PENDING, PaymentStatus.HELD, PaymentStatus.SUBMITTED})
PAYABLE_PAYMENT_STATUSES = frozenset({PaymentStatus.PENDING, PaymentStatus.SUBMITTED})
ON_CHAIN_PAYMENT_STATUSES = frozenset({PaymentStatus.PAID, PaymentStatus.CLAIMABLE})
PAID_OR_LANDING_PAYMENT_STATUSES = frozenset({PaymentStatus.PAID, PaymentStatus.SUBMITTED})


PAYMENT_TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    # preflight holds a failing destination; building puts it into a transaction
    # (or the chain scan finds it paid by a transaction this ledger lost: adopted as paid, or
    # as a claimable balance waiting to be claimed)
    PaymentStatus.PENDING: frozenset(
        {PaymentStatus.HELD, PaymentStatus.SUBMITTED, PaymentStatus.PAID, PaymentStatus.CLAIMABLE}
    ),
    # a later run's retry payment settles it; a hold is never released back into its own
    # run, so a held payment and its retry can never both be paid
    PaymentStatus.HELD: frozenset({PaymentStatus.RETRIED, PaymentStatus.CORRECTED}),
    # landed (as a payment, or as a claimable balance); or provably never landing (rebuild:
    # back to pending); or refused per operation
    PaymentStatus.SUBMITTED: frozenset(
        {PaymentStatus.PAID, PaymentStatus.CLAIMABLE, PaymentStatus.PENDING, PaymentStatus.HELD}
    ),
    # the farmer claimed the balance (settled); or the payout account took it back after the
    # window (owed again: a later run retries it)
    PaymentStatus.CLAIMABLE: frozenset({PaymentStatus.PAID, PaymentStatus.HELD}),
    PaymentStatus.PAID: frozenset({PaymentStatus.CORRECTED}),
    PaymentStatus.FAILED: frozenset({PaymentStatus.RETRIED}),
    PaymentStatus.RETRIED: frozenset(),
    PaymentStatus.CORRECTED: frozenset(),
}


class TransactionStatus(StrEnum):
    BUILT = "built"  # signed and committed, not sent yet
    SUBMITTED = "submitted"  # sent at least once; outcome not known yet
    CONFIRMED = "confirmed"  # in a closed ledger, successful
    FAILED = "failed"  # in a closed ledger, failed (fee and sequence consumed)
    DEAD = "dead"  # provably never lands: expired, or its sequence was used by another

    @property
    def is_live(self) -> bool:
        return self in (TransactionStatus.BUILT, TransactionStatus.SUBMITTED)

    @property
    def is_live_or_landed(self) -> bool:
        """Landed successfully, or may still land."""
        return self in LIVE_OR_LANDED_TRANSACTION_STATUSES


LIVE_OR_LANDED_TRANSACTION_STATUSES = frozenset(
    {TransactionStatus.BUILT, TransactionStatus.SUBMITTED, TransactionStatus.CONFIRMED}
)


TRANSACTION_TRANSITIONS: dict[TransactionStatus, frozenset[TransactionStatus]] = {
    TransactionStatus.BUILT: frozenset(
        {TransactionStatus.SUBMITTED, TransactionStatus.CONFIRMED, TransactionStatus.FAILED, TransactionStatus.DEAD}
    ),
    # only the network's answer or the "can never land" rule moves a submitted transaction
    TransactionStatus.SUBMITTED: frozenset(
        {TransactionStatus.CONFIRMED, TransactionStatus.FAILED, TransactionStatus.DEAD}
    ),
    TransactionStatus.CONFIRMED: frozenset(),
    TransactionStatus.FAILED: frozenset(),
    TransactionStatus.DEAD: frozenset(),
}


#: each status model's transitions table: `transition()` looks the row's table up here
TRANSITIONS: dict[StatusModel, Mapping[Any, frozenset]] = {
    Run: RUN_TRANSITIONS,
    Payment: PAYMENT_TRANSITIONS,
    StellarTransaction: TRANSACTION_TRANSITIONS,
}


def transition_many(
    session: Session,
    model: StatusModel,
    row_ids: list[int],
    from_status: StrEnum,
    to_status: StrEnum,
    *,
    event: str,
    run_id: int,
    detail: dict | None = None,
    **values: Any,
) -> None:
    """`transition` for many rows at once: all move, or none (StaleStatus)."""
    if not row_ids:
        return
    table = _table_name(model)
    if to_status not in TRANSITIONS[model][from_status]:
        raise InvalidTransition(f"{table}: {from_status} -> {to_status} is not allowed")
    result = session.execute(
        update(model)
        .where(col(model.id).in_(row_ids), col(model.status) == from_status)
        .values(status=to_status, updated_at=utcnow(), **values)
    )
    moved = rowcount(result)
    if moved != len(row_ids):
        raise StaleStatus(f"{len(row_ids) - moved} {table} rows are no longer {from_status}")
    for row_id in row_ids:
        record_event(
            session,
            entity=table,
            entity_id=row_id,
            run_id=run_id,
            event=event,
            from_status=str(from_status),
            to_status=str(to_status),
            detail=detail,
        )


def _table_name(model: StatusModel) -> str:
    name = model.__tablename__
    if not isinstance(name, str):
        raise TypeError(f"{model.__name__} has no fixed table name")
    return name
