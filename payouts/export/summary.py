"""Per-farm totals for the revenue model's settlement (`payouts export --summary farms`).

Totals are summed in the database by farm, payout basis and state, then folded per farm in
Python (a row per farm and basis, so memory follows the number of farms, not of payments).

- paid: payments that went out (paid, or paid and corrected later), by payout basis too;
- held: owed receipts held now (address, trustline, account), each once;
- owed: what is still to be paid, one entry per owed receipt (ledger/outstanding.py): a
  payment that a later run retries owes nothing itself, the newest entry of its chain does, and
  a paid retry settles the whole chain.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlmodel import Session, col

from payouts.export.rows import ExportFilter, iso_utc
from payouts.ledger.kinds import PayoutBasis
from payouts.ledger.models import FarmSignon, Payment, Receipt, Run
from payouts.ledger.outstanding import HELD_STATUSES, owed_units, retry_chains
from payouts.ledger.states import LIVE_RUN_STATUSES
from payouts.money import format_tft

BASES = tuple(PayoutBasis)
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
    chains = retry_chains(session)
    went_out = col(Payment.paid_at).is_not(None)
    # one row per payment, added up here: a farm's total can pass 64 bits (each payment fits
    # a Stellar int64, their sum need not), where SQLite's SUM() stops with "integer overflow"
    statement = (
        select(
            col(Payment.id),
            col(Payment.farm_id),
            col(Payment.payout_basis),
            col(Payment.amount_tft_units),
            col(Payment.status),
            went_out.label("went_out"),
        )
        .join(Run, col(Run.id) == col(Payment.run_id))
        .where(col(Run.status).in_(LIVE_RUN_STATUSES))
        .order_by(col(Payment.farm_id), col(Payment.payout_basis))
    )
    if filters.period_offset is not None:
        statement = statement.where(col(Run.period_offset) == filters.period_offset)
    if filters.farm_id is not None:
        statement = statement.where(col(Payment.farm_id) == filters.farm_id)
    if filters.addresses:
        statement = statement.where(col(Payment.destination).in_(list(filters.addresses)))

    current: dict | None = None
    for row in session.execute(statement.execution_options(yield_per=1000)):
        if current is None or current["farm_id"] != row.farm_id:
            if current is not None:
                yield _finish(session, current)
            current = _empty(row.farm_id)
        amount = int(row.amount_tft_units)
        paid = amount if row.went_out else 0
        owed = owed_units(chains, row.id, row.status, amount, run_live=True)
        current["paid_tft_units"] += paid
        current["held_tft_units"] += owed if row.status in HELD_STATUSES else 0
        current["owed_tft_units"] += owed
        current["payments"] += 1
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
