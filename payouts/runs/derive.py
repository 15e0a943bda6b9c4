"""Every payment re-derived from canonical receipt bytes (parsed), never from the columns beside
them: what the manifest's payments tree covers and what the gate checks before signing.

- a receipt payment: the minting receipt's bytes on `receipts` (its hash, `stellar_payout_address`
  and `reward.tft`);
- a retry: its retry receipt's bytes (hash and `stellar_payout_address`); its amount follows
  `retry_for_receipt` back to the original receipt's bytes (through earlier retries), and the
  retry receipt's own `reward.tft` must agree;
- a correction: its correction receipt's bytes (`stellar_payout_address`, `amount.tft`).

A payment whose kind is none of these cannot be derived and is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson
from sqlmodel import Session, col, select

from payouts.calculation.receipts import receipt_hash
from payouts.ledger.kinds import PaymentKind
from payouts.ledger.models import Payment, Receipt
from payouts.runs.errors import RunsError

KNOWN_KINDS = tuple(PaymentKind)
#: retries of retries are followed this deep at most (a loop in an edited ledger ends here)
MAX_RETRY_DEPTH = 64


class DerivationError(RunsError):
    """A payment that cannot be derived from its receipt bytes, or differs from them; the
    message names the payment and the field."""

    def __init__(self, payment: Payment, field: str, message: str) -> None:
        self.payment_id = payment.id
        self.field = field
        super().__init__(f"payment {payment.id} ({payment.kind}, node {payment.node_id}): {field}: {message}")


@dataclass(frozen=True)
class Derived:
    """A payment as its receipt bytes say it is: the leaf of the manifest's payments tree."""

    receipt_hash: str
    kind: str
    destination: str
    amount_tft_units: int


def _parse(payment: Payment, data: bytes, what: str) -> dict:
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise DerivationError(payment, "receipt_bytes", f"the {what} bytes are not readable") from None
    if not isinstance(document, dict):
        raise DerivationError(payment, "receipt_bytes", f"the {what} bytes are not a receipt")
    return document


def _field(payment: Payment, document: dict, path: tuple[str, ...], kind: type, what: str):
    value: object = document
    for key in path:
        if not isinstance(value, dict) or key not in value:
            raise DerivationError(payment, "receipt_bytes", f"the {what} has no {'.'.join(path)}")
        value = value[key]
    if type(value) is not kind:
        raise DerivationError(payment, "receipt_bytes", f"the {what}'s {'.'.join(path)} is not a {kind.__name__}")
    return value


ReceiptLookup = Callable[[int], Receipt | None]


def derive_payment(session: Session, payment: Payment, receipts: ReceiptLookup | None = None) -> Derived:
    """The payment from its receipt bytes; raises DerivationError when it cannot be derived."""
    get_receipt = receipts or (lambda receipt_id: session.get(Receipt, receipt_id))
    if payment.kind == PaymentKind.RECEIPT:
        receipt = get_receipt(payment.receipt_id) if payment.receipt_id is not None else None
        if receipt is None:
            raise DerivationError(payment, "receipt_id", "names no receipt in the ledger")
        data = bytes(receipt.receipt_bytes)
        document = _parse(payment, data, "receipt")
        return Derived(
            receipt_hash=receipt_hash(data),
            kind=PaymentKind.RECEIPT,
            destination=_field(payment, document, ("stellar_payout_address",), str, "receipt"),
            amount_tft_units=_field(payment, document, ("reward", "tft"), int, "receipt"),
        )
    if payment.kind == PaymentKind.CORRECTION:
        data = bytes(payment.receipt_bytes or b"")
        document = _parse(payment, data, "correction receipt")
        return Derived(
            receipt_hash=receipt_hash(data),
            kind=PaymentKind.CORRECTION,
            destination=_field(payment, document, ("stellar_payout_address",), str, "correction receipt"),
            amount_tft_units=_field(payment, document, ("amount", "tft"), int, "correction receipt"),
        )
    if payment.kind == PaymentKind.RETRY:
        data = bytes(payment.receipt_bytes or b"")
        document = _parse(payment, data, "retry receipt")
        own_amount = _field(payment, document, ("reward", "tft"), int, "retry receipt")
        original = _field(payment, document, ("retry_for_receipt",), str, "retry receipt")
        _check_retry_link(session, payment, original)
        amount = _original_amount(session, payment, original)
        if own_amount != amount:
            raise DerivationError(
                payment,
                "amount_tft_units",
                f"the retry receipt says {own_amount} TFT units, the receipt it retries "
                f"({original[:16]}) says {amount}",
            )
        return Derived(
            receipt_hash=receipt_hash(data),
            kind=PaymentKind.RETRY,
            destination=_field(payment, document, ("stellar_payout_address",), str, "retry receipt"),
            amount_tft_units=amount,
        )
    raise DerivationError(payment, "kind", f"{payment.kind!r} is not a payment kind this engine knows; refused")


def _check_retry_link(session: Session, payment: Payment, wanted_hash: str) -> None:
    """The row's link to the payment it retries must name the receipt its bytes retry: paying
    the retry settles the linked payment, so a link moved to another held payment would leave
    the retried one held, retried and paid again next month."""
    linked = session.get(Payment, payment.retry_of_payment_id) if payment.retry_of_payment_id is not None else None
    if linked is None:
        raise DerivationError(payment, "retry_of_payment_id", "names no payment in the ledger")
    if linked.receipt_hash != wanted_hash:
        raise DerivationError(
            payment,
            "retry_of_payment_id",
            f"names payment {linked.id} (receipt {linked.receipt_hash[:16]}); the retry receipt retries "
            f"{wanted_hash[:16]}",
        )


def _original_amount(session: Session, payment: Payment, wanted_hash: str) -> int:
    """The amount the receipt with `wanted_hash` pays, read from its own bytes (a minting
    receipt's `reward.tft`, a correction's `amount.tft`; an earlier retry is followed back)."""
    for _ in range(MAX_RETRY_DEPTH):
        for receipt in session.exec(select(Receipt).where(Receipt.receipt_hash == wanted_hash)).all():
            data = bytes(receipt.receipt_bytes)
            if receipt_hash(data) == wanted_hash:
                return _field(
                    payment, _parse(payment, data, "original receipt"), ("reward", "tft"), int, "original receipt"
                )
        earlier = None
        for candidate in session.exec(
            select(Payment).where(Payment.receipt_hash == wanted_hash, col(Payment.kind).in_(["retry", "correction"]))
        ).all():
            if candidate.receipt_bytes is not None and receipt_hash(bytes(candidate.receipt_bytes)) == wanted_hash:
                earlier = candidate
                break
        if earlier is None:
            raise DerivationError(
                payment, "retry_for_receipt", f"no receipt in the ledger has the hash {wanted_hash[:16]} and its bytes"
            )
        document = _parse(payment, bytes(earlier.receipt_bytes or b""), "earlier receipt")
        if earlier.kind == PaymentKind.CORRECTION:
            return _field(payment, document, ("amount", "tft"), int, "correction receipt")
        wanted_hash = _field(payment, document, ("retry_for_receipt",), str, "earlier retry receipt")
    raise DerivationError(payment, "retry_for_receipt", f"retries more than {MAX_RETRY_DEPTH} receipts deep")


def row_differences(payment: Payment, derived: Derived) -> list[tuple[str, str]]:
    """(field, what differs) between the payment row and what its receipt bytes say."""
    differences = []
    if payment.receipt_hash != derived.receipt_hash:
        differences.append(
            ("receipt_hash", f"the row says {payment.receipt_hash}, the receipt bytes hash to {derived.receipt_hash}")
        )
    if payment.destination != derived.destination:
        differences.append(
            ("destination", f"the row says {payment.destination}, the receipt says {derived.destination}")
        )
    if payment.amount_tft_units != derived.amount_tft_units:
        differences.append(
            (
                "amount_tft_units",
                f"the row says {payment.amount_tft_units}, the receipt says {derived.amount_tft_units}",
            )
        )
    return differences
