"""Per-farm totals for the revenue model's settlement (`payouts export --summary farms`).

Totals are summed in the database by farm, payout basis and state, then folded per farm in
Python (a row per farm and basis, so memory follows the number of farms, not of payments).

- paid: payments that went out (paid, or paid and corrected later), by payout basis too;
- held: payments held now (address, trustline, account);
- owed: what is still to be paid: pending, submitted and held payments, except a held payment
  that a live retry already carries (the retry counts, not both).
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import and_, case, exists, func, select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from payouts.export.rows import LIVE_RUN_STATUSES, ExportFilter, iso_utc
from payouts.ledger.models import FarmSignon, Payment, Receipt, Run
from payouts.ledger.states import PaymentStatus
from payouts.money import format_tft

BASES = ("poc_treasury", "poc_minted", "revenue_share", "correction")
SUMMARY_FIELDS = (
    "farm_id",
    "farm_name",
    "owed_tft_units",
    "owed_tft",
    "paid_tft_units",
    "paid_tft",
    "held_tft_units",
    "held_tft",
    "payments",
    *(f"paid_{basis}_tft_units" for basis in BASES),
    *(f"owed_{basis}_tft_units" for basis in BASES),
    "contact_confirmed_at",
    "sla_accepted_at",
)


def farm_summaries(session: Session, filters: ExportFilter | None = None) -> Iterator[dict]:
    """One summary per farm, ordered by farm id."""
    filters = filters or ExportFilter()
    retry = aliased(Payment, name="retry")
    retry_run = aliased(Run, name="retry_run")
    carried_by_retry = exists(
        select(retry.id)
        .join(retry_run, retry_run.id == retry.run_id)
        .where(retry.retry_of_payment_id == Payment.id, retry_run.status.in_(LIVE_RUN_STATUSES))
    )
    went_out = Payment.paid_at.is_not(None)
    outstanding = and_(
        Payment.status.in_([PaymentStatus.PENDING, PaymentStatus.SUBMITTED, PaymentStatus.HELD]),
        ~and_(Payment.status == PaymentStatus.HELD, carried_by_retry),
    )
    amount = Payment.amount_tft_units
    statement = (
        select(
            Payment.farm_id,
            Payment.payout_basis,
            func.sum(case((went_out, amount), else_=0)).label("paid"),
            func.sum(case((Payment.status == PaymentStatus.HELD, amount), else_=0)).label("held"),
            func.sum(case((outstanding, amount), else_=0)).label("owed"),
            func.count().label("payments"),
        )
        .join(Run, Run.id == Payment.run_id)
        .where(Run.status.in_(LIVE_RUN_STATUSES))
        .group_by(Payment.farm_id, Payment.payout_basis)
        .order_by(Payment.farm_id, Payment.payout_basis)
    )
    if filters.period_offset is not None:
        statement = statement.where(Run.period_offset == filters.period_offset)
    if filters.farm_id is not None:
        statement = statement.where(Payment.farm_id == filters.farm_id)
    if filters.addresses:
        statement = statement.where(Payment.destination.in_(list(filters.addresses)))

    current: dict | None = None
    for row in session.execute(statement):
        if current is None or current["farm_id"] != row.farm_id:
            if current is not None:
                yield _finish(session, current)
            current = _empty(row.farm_id)
        paid, held, owed = int(row.paid or 0), int(row.held or 0), int(row.owed or 0)
        current["paid_tft_units"] += paid
        current["held_tft_units"] += held
        current["owed_tft_units"] += owed
        current["payments"] += row.payments
        if row.payout_basis in BASES:
            current[f"paid_{row.payout_basis}_tft_units"] += paid
            current[f"owed_{row.payout_basis}_tft_units"] += owed
    if current is not None:
        yield _finish(session, current)


def _empty(farm_id: int) -> dict:
    summary = {name: 0 for name in SUMMARY_FIELDS}
    summary.update({"farm_id": farm_id, "farm_name": "", "contact_confirmed_at": None, "sla_accepted_at": None})
    return summary


def _finish(session: Session, summary: dict) -> dict:
    farm_id = summary["farm_id"]
    summary["farm_name"] = (
        session.execute(
            select(Receipt.farm_name).where(Receipt.farm_id == farm_id).order_by(Receipt.id.desc()).limit(1)
        ).scalar()
        or ""
    )
    signon = session.execute(select(FarmSignon).where(FarmSignon.farm_id == farm_id)).scalar()
    if signon is not None:
        summary["contact_confirmed_at"] = iso_utc(signon.contact_confirmed_at)
        summary["sla_accepted_at"] = iso_utc(signon.sla_accepted_at)
    for name in ("owed", "paid", "held"):
        summary[f"{name}_tft"] = format_tft(summary[f"{name}_tft_units"])
    return summary
