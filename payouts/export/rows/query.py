"""The export's filter and the queries its entries are read with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import aliased
from sqlmodel import Session, col

from payouts.ledger.kinds import PaymentKind
from payouts.ledger.models import (
    FarmSignon,
    NodeTransition,
    Payment,
    Receipt,
    Run,
    StellarTransaction,
)
from payouts.ledger.states import LIVE_RUN_STATUSES
from payouts.periods import Period


@dataclass(frozen=True)
class ExportFilter:
    """What a farmer searches by; every given criterion must match."""

    period_offset: int | None = None
    farm_id: int | None = None
    node_id: int | None = None
    addresses: tuple[str, ...] = ()
    #: a receipt hash, a retry or correction receipt hash, or a batch memo (Merkle root)
    receipt_hash: str | None = None

    def document(self) -> dict:
        return {
            "period": Period(self.period_offset).label if self.period_offset is not None else None,
            "farm_id": self.farm_id,
            "node_id": self.node_id,
            "addresses": list(self.addresses),
            "receipt_hash": self.receipt_hash,
        }


def next_retry_period(session: Session) -> str:
    """The period whose run retries what is held now: the one after the newest live run."""
    newest = session.execute(
        select(func.max(col(Run.period_offset))).where(col(Run.status).in_(LIVE_RUN_STATUSES))
    ).scalar()
    return Period(newest + 1).label if newest is not None else ""


def periods_of_run_entries(session: Session, run_id: int) -> list[int]:
    """The periods whose export entries a run's payments belong to: its own, and the periods
    the receipts it retries or corrects were earned in (their entries change when it pays)."""
    receipt_run = aliased(Run, name="receipt_run")
    offsets = session.execute(
        select(col(receipt_run.period_offset))
        .select_from(Payment)
        .join(Receipt, col(Receipt.id) == col(Payment.receipt_id))
        .join(receipt_run, col(receipt_run.id) == col(Receipt.run_id))
        .where(col(Payment.run_id) == run_id)
        .distinct()
    ).scalars()
    return sorted(set(offsets))


def _statement(filters: ExportFilter, order: str):
    receipt_run = aliased(Run, name="receipt_run")
    paying_run = aliased(Run, name="paying_run")
    retried = aliased(Payment, name="retried")
    corrected = aliased(Payment, name="corrected")
    correction = aliased(Payment, name="correction")
    correction_run = aliased(Run, name="correction_run")
    has_correction = exists(
        select(col(correction.id))
        .join(correction_run, col(correction_run.id) == col(correction.run_id))
        .where(
            col(correction.correction_of_payment_id) == col(Payment.id),
            col(correction.kind) == PaymentKind.CORRECTION,
            col(correction_run.status).in_(LIVE_RUN_STATUSES),
        )
    )
    own_payment = aliased(Payment, name="own_payment")
    has_own_payment = exists(
        select(col(own_payment.id)).where(
            col(own_payment.receipt_id) == col(Receipt.id), col(own_payment.kind) == PaymentKind.RECEIPT
        )
    )
    columns = [
        col(receipt_run.period_offset),
        col(receipt_run.period_start_ts),
        col(receipt_run.period_end_ts),
        col(receipt_run.id).label("receipt_run_id"),
        col(receipt_run.status).label("receipt_run_status"),
        col(receipt_run.code_version),
        col(Receipt.id).label("receipt_id"),
        col(Receipt.node_id),
        col(Receipt.farm_id),
        col(Receipt.farm_name),
        col(Receipt.twin_id),
        col(Receipt.node_type),
        col(Receipt.farming_policy_id),
        col(Receipt.cu_pm),
        col(Receipt.su_pm),
        col(Receipt.nu_pm),
        col(Receipt.measured_uptime_s),
        col(Receipt.uptime_permille),
        col(Receipt.eligibility),
        col(Receipt.violation),
        col(Receipt.reason),
        col(Receipt.reward_musd),
        col(Receipt.reward_tft_units),
        col(Receipt.stellar_payout_address),
        col(Receipt.receipt_hash),
        col(Receipt.receipt_bytes),
        col(Receipt.connection_price_musd),
        col(Payment.id).label("payment_id"),
        col(Payment.kind),
        col(Payment.receipt_hash).label("payment_receipt_hash"),
        col(Payment.receipt_bytes).label("payment_receipt_bytes"),
        col(Payment.destination),
        col(Payment.amount_tft_units),
        col(Payment.status).label("payment_status"),
        col(Payment.hold_reason),
        col(Payment.in_manifest),
        col(Payment.payout_basis),
        col(Payment.tx_hash),
        col(Payment.ledger),
        col(Payment.paid_at),
        col(Payment.claimable_until),
        col(paying_run.id).label("paying_run_id"),
        col(paying_run.period_offset).label("paying_period_offset"),
        col(paying_run.status).label("paying_run_status"),
        col(retried.receipt_hash).label("retry_of"),
        col(corrected.receipt_hash).label("correction_of"),
        has_correction.label("is_corrected"),
        has_own_payment.label("has_own_payment"),
        col(StellarTransaction.memo_hash),
        col(StellarTransaction.status).label("tx_status"),
        col(NodeTransition.v3_opted_out_at),
        col(NodeTransition.v4_account),
        col(FarmSignon.contact_confirmed_at),
        col(FarmSignon.sla_accepted_at),
    ]
    statement = (
        select(*columns)
        .select_from(Receipt)
        .join(receipt_run, col(receipt_run.id) == col(Receipt.run_id))
        .outerjoin(Payment, col(Payment.receipt_id) == col(Receipt.id))
        .outerjoin(paying_run, col(paying_run.id) == col(Payment.run_id))
        .outerjoin(retried, col(retried.id) == col(Payment.retry_of_payment_id))
        .outerjoin(corrected, col(corrected.id) == col(Payment.correction_of_payment_id))
        .outerjoin(StellarTransaction, col(StellarTransaction.tx_hash) == col(Payment.tx_hash))
        .outerjoin(NodeTransition, col(NodeTransition.node_id) == col(Receipt.node_id))
        .outerjoin(FarmSignon, col(FarmSignon.farm_id) == col(Receipt.farm_id))
        .where(
            col(receipt_run.status).in_(LIVE_RUN_STATUSES),
            # a retry or correction in a replaced or rejected run never happened
            or_(col(Payment.id).is_(None), col(paying_run.status).in_(LIVE_RUN_STATUSES)),
        )
    )
    if filters.period_offset is not None:
        statement = statement.where(col(receipt_run.period_offset) == filters.period_offset)
    if filters.farm_id is not None:
        statement = statement.where(col(Receipt.farm_id) == filters.farm_id)
    if filters.node_id is not None:
        statement = statement.where(col(Receipt.node_id) == filters.node_id)
    if filters.addresses:
        addresses = list(filters.addresses)
        statement = statement.where(
            or_(col(Receipt.stellar_payout_address).in_(addresses), col(Payment.destination).in_(addresses))
        )
    if filters.receipt_hash is not None:
        wanted = filters.receipt_hash.lower()
        statement = statement.where(
            or_(
                col(Receipt.receipt_hash) == wanted,
                col(Payment.receipt_hash) == wanted,
                col(StellarTransaction.memo_hash) == wanted,
                col(retried.receipt_hash) == wanted,
                col(corrected.receipt_hash) == wanted,
            )
        )
    keys: tuple[Any, ...]
    if order == "farm":  # the static site groups by farm, then node
        keys = (col(Receipt.farm_id), col(Receipt.node_id), col(receipt_run.period_offset))
    else:
        keys = (col(receipt_run.period_offset), col(Receipt.node_id))
    return statement.order_by(*keys, col(Receipt.id), col(Payment.id))
