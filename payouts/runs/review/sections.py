"""The review's sections of what is signed: the manifest's payments as new receipts, retries
and corrections, whose totals add up to the manifest's total to the unit."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlmodel import Session

from payouts.ledger import repository
from payouts.ledger.kinds import PaymentKind
from payouts.ledger.models import Payment, Run
from payouts.ledger.repository import id_of
from payouts.periods import Period

#: the sections in the order the review shows them (a payment kind each)
SECTION_KINDS = tuple(PaymentKind)


@dataclass
class Section:
    kind: str
    payments: int = 0
    tft_units: int = 0
    #: retries and corrections one by one (a receipt section is summed only)
    entries: list[dict] = field(default_factory=list)


def _original_period(session: Session, payment: Payment, link: int | None) -> str | None:
    original = session.get(Payment, link) if link is not None else None
    if original is None:
        return None
    run = session.get(Run, original.run_id)
    return Period(run.period_offset).label if run is not None else None


def manifest_sections(session: Session, run: Run) -> list[Section]:
    """Every payment of the manifest in one section by its kind (an unknown kind gets its own
    section, so nothing signed is left out of the review)."""
    sections: dict[str, Section] = {kind: Section(kind) for kind in SECTION_KINDS}
    for payment in repository.manifest_payments(session, id_of(run)):
        section = sections.setdefault(payment.kind, Section(payment.kind))
        section.payments += 1
        section.tft_units += payment.amount_tft_units
        if payment.kind == PaymentKind.RECEIPT:
            continue
        link = payment.retry_of_payment_id if payment.kind == PaymentKind.RETRY else payment.correction_of_payment_id
        section.entries.append(
            {
                "payment_id": payment.id,
                "farm_id": payment.farm_id,
                "node_id": payment.node_id,
                "destination": payment.destination,
                "amount_tft_units": payment.amount_tft_units,
                "of_period": _original_period(session, payment, link),
            }
        )
    return list(sections.values())
