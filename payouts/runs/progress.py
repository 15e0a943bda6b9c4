"""How far a run's payments have come: paid, pending and held, counted from the ledger.

`payouts runs` shows it for runs being paid, and `payouts pay` closes with it, so a resumed
`pay` reports the whole run, not only what its own call sent. Amounts in TFT units (10^-7 TFT).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlmodel import Session, col

from payouts.ledger.kinds import TransactionPurpose
from payouts.ledger.models import LedgerEvent, Payment, StellarTransaction
from payouts.ledger.states import HELD_PAYMENT_STATUSES, SETTLED_PAYMENT_STATUSES, PaymentStatus, TransactionStatus
from payouts.money import format_tft_human

#: the event the payment engine records for each submission whose outcome was unknown
UNKNOWN_OUTCOME_EVENT = "transaction.unknown_outcome"


@dataclass
class RunProgress:
    run_id: int
    paid_count: int = 0
    paid_tft_units: int = 0
    #: approved and not paid yet: waiting to be sent, or sent and not confirmed
    pending_count: int = 0
    pending_tft_units: int = 0
    #: not paid by this run: the destination cannot receive (retried by a later run)
    held_count: int = 0
    held_tft_units: int = 0
    transactions: int = 0
    unknown_outcomes: int = 0

    def line(self) -> str:
        """'247 paid (151,339.9 TFT), 20 held (6,301 TFT), 0 pending (0 TFT)'."""
        return (
            f"{self.paid_count:,} paid ({format_tft_human(self.paid_tft_units)} TFT), "
            f"{self.held_count:,} held ({format_tft_human(self.held_tft_units)} TFT), "
            f"{self.pending_count:,} pending ({format_tft_human(self.pending_tft_units)} TFT)"
        )

    def document(self) -> dict:
        return {
            "paid_count": self.paid_count,
            "paid_tft_units": self.paid_tft_units,
            "pending_count": self.pending_count,
            "pending_tft_units": self.pending_tft_units,
            "held_count": self.held_count,
            "held_tft_units": self.held_tft_units,
            "transactions": self.transactions,
            "unknown_outcomes_resolved": self.unknown_outcomes,
        }


#: paid out: a claimable balance left the payout account too (the farmer claims it later)
_PAID = SETTLED_PAYMENT_STATUSES
_HELD = HELD_PAYMENT_STATUSES | {PaymentStatus.RETRIED}


def run_progress(session: Session, run_ids: Iterable[int]) -> dict[int, RunProgress]:
    """Each run's progress, in three grouped queries whatever the number of runs."""
    wanted = sorted(set(run_ids))
    progress = {run_id: RunProgress(run_id) for run_id in wanted}
    if not wanted:
        return progress
    rows = session.execute(
        select(
            col(Payment.run_id),
            col(Payment.status),
            col(Payment.in_manifest),
            (col(Payment.paid_at).is_not(None)).label("went_out"),
            func.count(),
            func.sum(col(Payment.amount_tft_units)),
        )
        .where(col(Payment.run_id).in_(wanted))
        .group_by(col(Payment.run_id), col(Payment.status), col(Payment.in_manifest), "went_out")
    ).all()
    for run_id, status, in_manifest, went_out, count, units in rows:
        entry, units = progress[run_id], int(units or 0)
        if status in _PAID and (status == PaymentStatus.PAID or went_out):
            entry.paid_count += count
            entry.paid_tft_units += units
        elif status in _HELD:
            entry.held_count += count
            entry.held_tft_units += units
        elif status == PaymentStatus.SUBMITTED or (status == PaymentStatus.PENDING and in_manifest):
            # a correction recorded after the manifest was signed waits for the next run
            entry.pending_count += count
            entry.pending_tft_units += units
    for run_id, count in session.execute(
        select(col(StellarTransaction.run_id), func.count())
        .where(
            col(StellarTransaction.run_id).in_(wanted),
            col(StellarTransaction.purpose) == TransactionPurpose.PAYMENT,
            col(StellarTransaction.status) == TransactionStatus.CONFIRMED,
        )
        .group_by(col(StellarTransaction.run_id))
    ).all():
        progress[run_id].transactions = count
    for run_id, count in session.execute(
        select(col(LedgerEvent.run_id), func.count())
        .where(col(LedgerEvent.run_id).in_(wanted), col(LedgerEvent.event) == UNKNOWN_OUTCOME_EVENT)
        .group_by(col(LedgerEvent.run_id))
    ).all():
        if run_id is not None:
            progress[run_id].unknown_outcomes = count
    return progress
