"""Held payments retried by a later run (minting_v3's RetryPayoutReceipt, SPEC 4.2).

When a period is calculated, every payment still held from an earlier period whose farm now has
a valid address joins the new run as a retry: a retry receipt naming the receipt it retries, paid
to the farm's current address. Retries are part of the new run's manifest, so its approvals and
funding cover them. The held original becomes `retried` only once its retry is paid, so a
replaced or rejected run loses nothing: the original is simply retried again.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import orjson
from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from payouts.calculation.receipts import receipt_hash, retry_receipt_bytes
from payouts.ledger.events import record_event
from payouts.ledger.kinds import PaymentKind
from payouts.ledger.models import Payment, Receipt, Run
from payouts.ledger.repository import id_of
from payouts.ledger.states import DEAD_RUN_STATUSES, PaymentStatus
from payouts.runs.errors import RunsError
from payouts.strkey import is_valid_public_key


def retries_so_far(session: Session, payment: Payment) -> int:
    """How many times the receipt behind `payment` has been retried: 0 for an original."""
    count = 0
    while payment.retry_of_payment_id is not None:
        count += 1
        original = session.get(Payment, payment.retry_of_payment_id)
        if original is None:
            raise RunsError(f"payment {payment.id} retries payment {payment.retry_of_payment_id}, not in the ledger")
        payment = original
    return count


def retry_rows(
    session: Session, run: Run, farm_addresses: dict[int, str], now: datetime, max_retries: int | None = None
) -> Iterable[dict]:
    """Retry payments for the new `run`, one per held payment of an earlier period.

    `max_retries` bounds how often one receipt is retried (None: until paid); a receipt past it
    stays held and listed by `payouts held` for an operator to settle by hand.
    """
    held = session.exec(
        select(Payment, Run)
        .join(Run, col(Payment.run_id) == col(Run.id))
        .where(
            Payment.status == PaymentStatus.HELD,
            Run.period_offset < run.period_offset,
            col(Run.status).not_in(DEAD_RUN_STATUSES),
        )
        .order_by(col(Payment.id))
    ).all()
    if not held:
        return
    live_retries = set(
        session.exec(
            select(Payment.retry_of_payment_id)
            .join(Run, col(Payment.run_id) == col(Run.id))
            .where(col(Payment.retry_of_payment_id).is_not(None), col(Run.status).not_in(DEAD_RUN_STATUSES))
        ).all()
    )
    for payment, held_run in held:
        if payment.id in live_retries:
            continue  # a live run already retries it
        if max_retries is not None and retries_so_far(session, payment) >= max_retries:
            continue
        address = farm_addresses.get(payment.farm_id, "")
        if not is_valid_public_key(address):
            continue  # still no usable address: stays held, listed by `payouts held`
        original = session.get(Receipt, payment.receipt_id) if payment.receipt_id else None
        document = {
            "failed_payout_period": {"start": held_run.period_start_ts, "end": held_run.period_end_ts},
            "retry_period": {"start": run.period_start_ts, "end": run.period_end_ts},
            "farm_id": payment.farm_id,
            "previous_stellar_payout_address": payment.destination,
            "stellar_payout_address": address,
            "retry_for_receipt": payment.receipt_hash,
            "reward": {"musd": original.reward_musd if original else 0, "tft": payment.amount_tft_units},
        }
        data = retry_receipt_bytes(document)
        yield {
            "run_id": run.id,
            "receipt_id": payment.receipt_id,
            "kind": PaymentKind.RETRY,
            "idempotency_key": f"retry:{run.id}:{payment.id}",
            "receipt_hash": receipt_hash(data),
            "receipt_bytes": data,
            "retry_of_payment_id": payment.id,
            "farm_id": payment.farm_id,
            "node_id": payment.node_id,
            "destination": address,
            "amount_tft_units": payment.amount_tft_units,
            "status": PaymentStatus.PENDING,
            "hold_reason": "",
            "in_manifest": True,
            "payout_basis": payment.payout_basis,
            "created_at": now,
            "updated_at": now,
        }


def retry_receipt_matches(payment: Payment) -> list[str]:
    """Problems between a retry or correction payment and its own hashed receipt (empty when
    it matches): an edited ledger row cannot redirect or resize it."""
    problems = []
    data = payment.receipt_bytes or b""
    if receipt_hash(data) != payment.receipt_hash:
        return [f"{payment.kind} receipt bytes do not match their hash"]
    try:
        document = orjson.loads(data)
        amount = document["amount"]["tft"] if payment.kind == PaymentKind.CORRECTION else document["reward"]["tft"]
        address = document["stellar_payout_address"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return [f"{payment.kind} receipt is not readable"]
    if address != payment.destination:
        problems.append(f"destination differs from the {payment.kind} receipt")
    if amount != payment.amount_tft_units:
        problems.append(f"amount differs from the {payment.kind} receipt")
    return problems


def join_corrections(session: Session, run: Run) -> int:
    """Corrections recorded since the last calculation join the new run: its manifest, its
    approvals and its funding total cover them. Returns how many joined."""
    pending = session.exec(
        select(Payment)
        .join(Run, col(Payment.run_id) == col(Run.id))
        .where(
            Payment.kind == PaymentKind.CORRECTION,
            Payment.status == PaymentStatus.PENDING,
            Payment.run_id != run.id,
            # recorded since, or joined a run that was then replaced or rejected
            or_(
                and_(col(Payment.in_manifest).is_(False), col(Run.period_offset) < run.period_offset),
                col(Run.status).in_(DEAD_RUN_STATUSES),
            ),
        )
    ).all()
    for payment in pending:
        record_event(
            session,
            entity="payments",
            entity_id=payment.id,
            run_id=run.id,
            event="payment.correction.joined_run",
            detail={"from_run_id": payment.run_id, "receipt_hash": payment.receipt_hash},
        )
        payment.run_id = id_of(run)
        payment.in_manifest = True
        session.add(payment)
    session.flush()
    return len(pending)
