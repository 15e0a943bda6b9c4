"""Correction entries (`payouts correct`): an amount owed on top of a receipt, never an edit.

A correction is a new payment (kind and payout basis "correction", pending, outside the run's
manifest) that points at the payment it corrects; the corrected row is left as it is, so the
chain, the reconciliation and the history keep agreeing. The export shows the original as
"corrected" and the correction as an entry of its own. It joins the manifest of the next run,
which pays it. Its memo is the BLAKE2b-256 hash of a small canonical correction receipt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col
from stellar_sdk import StrKey

from payouts.calculation.receipts import receipt_hash as blake2b_hex
from payouts.ledger.errors import LedgerError
from payouts.ledger.events import record_event
from payouts.ledger.kinds import PaymentKind, PayoutBasis
from payouts.ledger.models import LedgerEvent, Payment, Receipt, Run
from payouts.ledger.states import LIVE_RUN_STATUSES, PaymentStatus
from payouts.ledger.types import utcnow
from payouts.money import format_tft, parse_tft
from payouts.periods import Period
from payouts.stellar.build import MAX_AMOUNT_UNITS

#: Stellar amounts are int64 stroops-like units
#: a correction of a receipt that has been corrected this many times needs a look first
MAX_CORRECTIONS_PER_RECEIPT = 100


class CorrectionError(LedgerError):
    """A correction that cannot be recorded (unknown receipt, bad amount, no reason)."""


class AlreadyCorrected(CorrectionError):
    """The receipt has a correction already: a second one needs `again=True` (`--again`)."""


@dataclass(frozen=True)
class Correction:
    payment_id: int
    receipt_hash: str
    correction_hash: str
    amount_tft_units: int
    corrects_payment_id: int | None
    idempotency_key: str


def parse_correction_amount(text: str, *, cap_tft_units: int | None) -> int:
    """TFT text -> units; refuses zero, negative, more than 7 decimals and above the cap."""
    stripped = text.strip()
    if stripped.startswith("-"):
        raise CorrectionError(f"a correction adds TFT; {text!r} is negative (the chain cannot take back)")
    try:
        units = parse_tft(stripped)
    except ValueError:
        raise CorrectionError(f"{text!r} is not a TFT amount with at most 7 decimals (e.g. 12.5)") from None
    if units <= 0:
        raise CorrectionError("a correction of 0 TFT records nothing; give a positive amount")
    if units > MAX_AMOUNT_UNITS:
        raise CorrectionError(f"{text} TFT is more than a Stellar payment can carry")
    if cap_tft_units is not None and units > cap_tft_units:
        raise CorrectionError(
            f"{format_tft(units)} TFT is over the per-node cap of {format_tft(cap_tft_units)} TFT "
            "(PAYOUTS_CAP_NODE_TFT_UNITS)"
        )
    return units


def record_correction(
    session: Session,
    receipt_hash: str,
    amount_tft_units: int,
    reason: str,
    *,
    again: bool = False,
    recorded_by: str = "",
) -> Correction:
    """Record a correction of the receipt (or retry receipt) `receipt_hash`; the caller commits.

    A receipt is corrected once: a second correction of the same node receipt (by its own
    hash or a retry's) is refused, naming the corrections already recorded, unless `again`.
    `recorded_by` (who asked for it) goes into the correction's history event."""
    wanted = receipt_hash.strip().lower()
    if len(wanted) != 64 or any(c not in "0123456789abcdef" for c in wanted):
        raise CorrectionError(f"{receipt_hash!r} is not a receipt hash (64 hex digits)")
    if not reason.strip():
        raise CorrectionError("a correction needs a reason (--reason), shown to the farmer")
    if amount_tft_units <= 0:
        raise CorrectionError("a correction needs a positive amount")

    corrected = session.execute(
        select(Payment)
        .join(Run, col(Run.id) == col(Payment.run_id))
        .where(
            col(Payment.receipt_hash) == wanted,
            col(Payment.kind) != PaymentKind.CORRECTION,
            col(Run.status).in_(LIVE_RUN_STATUSES),
        )
        .order_by(col(Payment.id).desc())
        .limit(1)
    ).scalar()
    receipt = session.execute(
        select(Receipt)
        .join(Run, col(Run.id) == col(Receipt.run_id))
        .where(
            col(Receipt.id) == corrected.receipt_id if corrected is not None else col(Receipt.receipt_hash) == wanted,
            col(Run.status).in_(LIVE_RUN_STATUSES),
        )
        .limit(1)
    ).scalar()
    if receipt is None:
        raise CorrectionError(f"no receipt with hash {wanted} in a live run of the ledger")

    destination = corrected.destination if corrected is not None else receipt.stellar_payout_address
    if not StrKey.is_valid_ed25519_public_key(destination):
        destination = receipt.stellar_payout_address  # the address the receipt names

    earlier = list_corrections(session, receipt_id=receipt.id)
    if earlier and not again:
        raise AlreadyCorrected(
            f"receipt {wanted} was already corrected: "
            + "; ".join(c.describe() for c in earlier)
            + ". Give --again to record another correction on top"
        )

    existing = session.execute(
        select(func.count())
        .select_from(Payment)
        .where(col(Payment.kind) == PaymentKind.CORRECTION, col(Payment.idempotency_key).like(f"correction:{wanted}:%"))
    ).scalar_one()
    if existing >= MAX_CORRECTIONS_PER_RECEIPT:
        raise CorrectionError(f"receipt {wanted} already has {existing} corrections")
    sequence = existing + 1
    key = f"correction:{wanted}:{sequence}"
    document = {
        "correction_of_receipt": wanted,
        "sequence": sequence,
        "run_id": receipt.run_id,
        "node_id": receipt.node_id,
        "farm_id": receipt.farm_id,
        "stellar_payout_address": destination,
        "amount": {"tft": amount_tft_units},
        "reason": reason.strip(),
    }
    data = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    now = utcnow()
    payment = Payment(
        run_id=receipt.run_id,
        receipt_id=receipt.id,
        kind=PaymentKind.CORRECTION,
        idempotency_key=key,
        receipt_hash=blake2b_hex(data),
        receipt_bytes=data,
        farm_id=receipt.farm_id,
        node_id=receipt.node_id,
        destination=destination,
        amount_tft_units=amount_tft_units,
        status=PaymentStatus.PENDING,
        hold_reason="",
        in_manifest=False,
        payout_basis=PayoutBasis.CORRECTION,
        correction_of_payment_id=corrected.id if corrected is not None else None,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():
            session.add(payment)
            session.flush()
    except IntegrityError:
        raise CorrectionError(f"another correction of {wanted} was recorded at the same time; run it again") from None
    if payment.id is None:
        raise LedgerError(f"the correction of {wanted} was written without an id")
    record_event(
        session,
        entity="payments",
        entity_id=payment.id,
        run_id=receipt.run_id,
        event="payment.correction.recorded",
        from_status=None,
        to_status=PaymentStatus.PENDING.value,
        detail={
            "receipt_hash": wanted,
            "amount_tft_units": amount_tft_units,
            "reason": reason.strip(),
            "correction_of_payment_id": payment.correction_of_payment_id,
            "recorded_by": recorded_by.strip(),
            "again": bool(earlier),
        },
    )
    return Correction(
        payment_id=payment.id,
        receipt_hash=wanted,
        correction_hash=payment.receipt_hash,
        amount_tft_units=amount_tft_units,
        corrects_payment_id=payment.correction_of_payment_id,
        idempotency_key=key,
    )


@dataclass(frozen=True)
class CorrectionEntry:
    """A recorded correction and where it stands. Amounts in TFT units (10^-7 TFT)."""

    payment_id: int
    recorded_at: datetime
    recorded_by: str
    reason: str
    #: the receipt (or retry receipt) it corrects, and that receipt's node and farm
    corrects_receipt_hash: str
    node_id: int | None
    farm_id: int
    amount_tft_units: int
    correction_hash: str
    status: str
    hold_reason: str
    in_manifest: bool
    run_id: int
    period_offset: int
    run_status: str
    tx_hash: str | None
    paid_at: datetime | None

    @property
    def state(self) -> str:
        """Where it stands, in words."""
        status = PaymentStatus(self.status)
        if status is PaymentStatus.PAID and self.paid_at is not None:
            return f"paid on {self.paid_at.astimezone(UTC):%Y-%m-%d}"
        if status is PaymentStatus.PENDING and not self.in_manifest:
            return "recorded: joins the next run"
        if status is PaymentStatus.PENDING:
            return f"in the {Period(self.period_offset).label} run (run {self.run_id}, {self.run_status})"
        if status is PaymentStatus.HELD:
            return f"held ({self.hold_reason}): retried by a later run"
        if status is PaymentStatus.SUBMITTED:
            return "sent: waiting for the ledger to confirm it"
        return status.value

    def describe(self) -> str:
        by = f" by {self.recorded_by}" if self.recorded_by else ""
        return (
            f"{format_tft(self.amount_tft_units)} TFT on {self.recorded_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC{by} "
            f"({self.reason!r}; {self.state})"
        )


def list_corrections(
    session: Session, *, receipt_id: int | None = None, receipt_hash: str | None = None, farm_id: int | None = None
) -> list[CorrectionEntry]:
    """Every correction recorded, oldest first (or those of one receipt or farm)."""
    statement = (
        select(Payment, Run, Receipt)
        .join(Run, col(Run.id) == col(Payment.run_id))
        .join(Receipt, col(Receipt.id) == col(Payment.receipt_id))
        .where(col(Payment.kind) == PaymentKind.CORRECTION)
        .order_by(col(Payment.id))
    )
    if receipt_id is not None:
        statement = statement.where(col(Payment.receipt_id) == receipt_id)
    if farm_id is not None:
        statement = statement.where(col(Payment.farm_id) == farm_id)
    rows = session.execute(statement).all()
    events = {
        event.entity_id: event
        for event in session.execute(
            select(LedgerEvent).where(
                col(LedgerEvent.event) == "payment.correction.recorded",
                col(LedgerEvent.entity_id).in_([p.id for p, _, _ in rows]),
            )
        ).scalars()
    }
    entries = []
    for payment, run, receipt in rows:
        document = orjson.loads(payment.receipt_bytes or b"{}")
        event = events.get(payment.id)
        detail = orjson.loads(event.detail_json) if event is not None else {}
        corrects = str(document.get("correction_of_receipt", receipt.receipt_hash))
        if receipt_hash is not None and receipt_hash.lower() not in (corrects, receipt.receipt_hash):
            continue
        entries.append(
            CorrectionEntry(
                payment_id=payment.id or 0,
                recorded_at=event.occurred_at if event is not None else payment.created_at,
                recorded_by=str(detail.get("recorded_by", "")),
                reason=str(document.get("reason", "")),
                corrects_receipt_hash=corrects,
                node_id=payment.node_id,
                farm_id=payment.farm_id,
                amount_tft_units=payment.amount_tft_units,
                correction_hash=payment.receipt_hash,
                status=payment.status,
                hold_reason=payment.hold_reason,
                in_manifest=payment.in_manifest,
                run_id=run.id or 0,
                period_offset=run.period_offset,
                run_status=run.status,
                tx_hash=payment.tx_hash,
                paid_at=payment.paid_at,
            )
        )
    return entries
