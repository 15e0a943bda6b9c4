"""The claimable balances a transaction creates, recorded on the payments it holds."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlmodel import Session, col
from stellar_sdk import TransactionEnvelope
from stellar_sdk.operation import CreateClaimableBalance

from payouts.ledger.events import record_event
from payouts.ledger.kinds import PaymentDelivery
from payouts.ledger.models import Payment
from payouts.ledger.states import PaymentStatus
from payouts.ledger.types import utcnow

#: a balance's claimants: the farmer and the payout account (one base reserve each)
CLAIMANTS = 2


def mark_claimable(session: Session, run_id: int, payment_ids: Sequence[int]) -> None:
    """Pending payments to send as claimable balances (their destination lacks a trustline)."""
    if not payment_ids:
        return
    session.execute(
        update(Payment)
        .where(col(Payment.id).in_(list(payment_ids)), col(Payment.status) == PaymentStatus.PENDING)
        .values(delivery=PaymentDelivery.CLAIMABLE_BALANCE, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    for payment_id in payment_ids:
        record_event(
            session,
            entity="payments",
            entity_id=payment_id,
            run_id=run_id,
            event="payment.claimable.preflight",
            detail={"reason": "no_trustline"},
        )


def record_balance_ids(session: Session, group: Sequence[Payment], envelope: TransactionEnvelope) -> None:
    """Each claimable operation's balance id, as the chain computes it: from the transaction's
    source account (the channel, when one pays the fee) and sequence, and the operation's index.
    Known before anything is sent, so a lost answer is looked up by hash and by balance id."""
    transaction = envelope.transaction
    for index, (payment, operation) in enumerate(zip(group, transaction.operations, strict=True)):
        if not isinstance(operation, CreateClaimableBalance):
            continue
        session.execute(
            update(Payment)
            .where(col(Payment.id) == payment.id)
            .values(claimable_balance_id=transaction.get_claimable_balance_id(index))
            .execution_options(synchronize_session=False)
        )
