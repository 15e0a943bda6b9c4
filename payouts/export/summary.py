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
from sqlmodel import Session, col

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
        select(col(retry.id))
        .join(retry_run, col(retry_run.id) == col(retry.run_id))
        .where(col(retry.retry_of_payment_id) == col(Payment.id), col(retry_run.status).in_(LIVE_RUN_STATUSES))
    )
    went_out = col(Payment.paid_at).is_not(None)
    outstanding = and_(
        col(Payment.status).in_([PaymentStatus.PENDING, PaymentStatus.SUBMITTED, PaymentStatus.HELD]),
        ~and_(col(Payment.status) == PaymentStatus.HELD, carried_by_retry),
    )
    amount = col(Payment.amount_tft_units)
    statement = (
        select(
            col(Payment.farm_id),
            col(Payment.payout_basis),
            func.sum(case((went_out, amount), else_=0)).label("paid"),
            func.sum(case((col(Payment.status) == PaymentStatus.HELD, amount), else_=0)).label("held"),
            func.sum(case((outstanding, amount), else_=0)).label("owed"),
            func.count().label("payments"),
        )
        .join(Run, col(Run.id) == col(Payment.run_id))
        .where(col(Run.status).in_(LIVE_RUN_STATUSES))
        .group_by(col(Payment.farm_id), col(Payment.payout_basis))
        .order_by(col(Payment.farm_id), col(Payment.payout_basis))
    )
    if filters.period_offset is not None:
        statement = statement.where(col(Run.period_offset) == filters.period_offset)
    if filters.farm_id is not None:
        statement = statement.where(col(Payment.farm_id) == filters.farm_id)
    if filters.addresses:
        statement = statement.where(col(Payment.destination).in_(list(filters.addresses)))

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
    summary: dict[str, object] = dict.fromkeys(SUMMARY_FIELDS, 0)
    summary.update({"farm_id": farm_id, "farm_name": "", "contact_confirmed_at": None, "sla_accepted_at": None})
    return summary


def _finish(session: Session, summary: dict) -> dict:
    farm_id = summary["farm_id"]
    summary["farm_name"] = (
        session.execute(
            select(col(Receipt.farm_name))
            .where(col(Receipt.farm_id) == farm_id)
            .order_by(col(Receipt.id).desc())
            .limit(1)
        ).scalar()
        or ""
    )
    signon = session.execute(select(FarmSignon).where(col(FarmSignon.farm_id) == farm_id)).scalar()
    if signon is not None:
        summary["contact_confirmed_at"] = iso_utc(signon.contact_confirmed_at)
        summary["sla_accepted_at"] = iso_utc(signon.sla_accepted_at)
    for name in ("owed", "paid", "held"):
        summary[f"{name}_tft"] = format_tft(summary[f"{name}_tft_units"])
    return summary
