"""The gate before signing: every payment is checked against what was approved."""

from __future__ import annotations

import hashlib

from sqlmodel import Session, col, select

from payouts.ledger.models import Payment, Receipt, Run
from payouts.runs.payment.queries import stop_run
from payouts.runs.retries import retry_receipt_matches


def check_payments_against_receipts(session: Session, run: Run) -> str | None:
    """Before signing: each payment must be what its hashed receipt says (an edited
    ledger row cannot redirect or resize a payment). A mismatch stops the run; returns
    its reason."""
    rows = session.exec(
        select(Payment, Receipt)
        .join(Receipt, col(Payment.receipt_id) == col(Receipt.id))
        .where(Payment.run_id == run.id, col(Payment.in_manifest).is_(True))
    ).all()
    own_receipts = session.exec(
        select(Payment).where(
            Payment.run_id == run.id,
            col(Payment.kind).in_(["retry", "correction"]),
            col(Payment.in_manifest).is_(True),
        )
    ).all()
    for payment in own_receipts:
        problems = retry_receipt_matches(payment)
        if problems:
            reason = f"payment {payment.id} ({payment.kind}): {'; '.join(problems)}"
            stop_run(session, run, reason)
            return reason
    for payment, receipt in rows:
        if payment.kind != "receipt":
            continue
        problems = []
        if hashlib.blake2b(receipt.receipt_bytes, digest_size=32).hexdigest() != receipt.receipt_hash:
            problems.append("receipt bytes do not match their hash")
        if payment.receipt_hash != receipt.receipt_hash:
            problems.append("payment memo differs from the receipt hash")
        if payment.amount_tft_units != receipt.reward_tft_units:
            problems.append("amount differs from the receipt")
        if payment.destination != receipt.stellar_payout_address:
            problems.append("destination differs from the receipt")
        if problems:
            reason = f"payment {payment.id} (node {payment.node_id}): {'; '.join(problems)}"
            stop_run(session, run, reason)
            return reason
    return None
