"""The gate before signing: every payment is checked against what was approved.

- When a run starts (or resumes), every payment in its manifest is re-derived from its canonical
  receipt bytes (payouts.runs.derive) and must equal its row: an edited destination, amount or
  memo, or a kind the engine does not know, stops the run naming the payment and the field.
- The approved manifest must name this network and this payer's payout account.
- Before each transaction is signed, each of its operations is re-derived once more and must be a
  payment of the approved manifest (same receipt hash, kind, destination and amount); its memo
  must be the receipt hash, or in batch mode the Merkle root of the derived receipt hashes.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select
from stellar_sdk import TransactionEnvelope
from stellar_sdk.operation import CreateClaimableBalance
from stellar_sdk.operation import Payment as PaymentOperation
from stellar_sdk.operation.create_claimable_balance import ClaimPredicateType

from payouts.ledger.kinds import PaymentDelivery, PaymentKind
from payouts.ledger.models import Payment, Receipt, Run
from payouts.ledger.repository import id_of
from payouts.money import parse_tft
from payouts.runs.approvals import Manifest
from payouts.runs.derive import DerivationError, Derived, derive_payment, row_differences
from payouts.runs.payment.queries import stop_run
from payouts.stellar.merkle import merkle_root
from payouts.stellar.network import PASSPHRASES

_SANDBOX_PASSPHRASE = PASSPHRASES["dev"]


def _name(payment: Payment) -> str:
    return f"payment {payment.id} ({payment.kind}, node {payment.node_id})"


def _difference(payment: Payment, derived: Derived) -> str | None:
    differences = row_differences(payment, derived)
    if not differences:
        return None
    field, detail = differences[0]
    what = {
        "receipt_hash": "payment memo differs from the receipt hash",
        "destination": "destination differs from the receipt",
        "amount_tft_units": "amount differs from the receipt",
    }[field]
    return f"{_name(payment)}: {what} (field {field}: {detail})"


def check_payments_against_receipts(session: Session, run: Run) -> str | None:
    """Before anything is signed: each payment of the manifest must be what its receipt bytes
    say (parsed, not the columns beside them). A difference stops the run; returns its reason."""
    payments = session.exec(
        select(Payment).where(Payment.run_id == run.id, col(Payment.in_manifest).is_(True)).order_by(col(Payment.id))
    ).all()
    receipt_ids = [p.receipt_id for p in payments if p.receipt_id is not None]
    receipts: dict[int, Receipt] = {}
    for start in range(0, len(receipt_ids), 500):
        chunk = receipt_ids[start : start + 500]
        receipts.update({id_of(r): r for r in session.exec(select(Receipt).where(col(Receipt.id).in_(chunk))).all()})
    for payment in payments:
        try:
            derived = derive_payment(session, payment, receipts.get)
        except DerivationError as exc:
            stop_run(session, run, str(exc))
            return str(exc)
        reason = _difference(payment, derived)
        if reason is None and payment.kind == PaymentKind.RECEIPT:
            receipt = receipts.get(payment.receipt_id) if payment.receipt_id is not None else None
            if receipt is not None and receipt.receipt_hash != derived.receipt_hash:
                reason = f"{_name(payment)}: receipt bytes do not match their hash (field receipts.receipt_hash)"
        if reason is not None:
            stop_run(session, run, reason)
            return reason
    return None


def check_manifest_binding(
    session: Session, run: Run, manifest: Manifest, *, network_passphrase: str, payout_account: str
) -> str | None:
    """The approved manifest must name this run, this network and this payer's payout account
    (a ledger on the sandbox may name none). A difference stops the run; returns its reason."""
    reason = None
    if manifest.run_id != run.id:
        reason = f"the approved manifest names run {manifest.run_id}, not run {run.id}"
    elif manifest.network_passphrase != network_passphrase:
        reason = (
            f"the approved manifest names the network {manifest.network_passphrase!r}; this payer signs for "
            f"{network_passphrase!r}"
        )
    elif manifest.payout_account and manifest.payout_account != payout_account:
        reason = (
            f"the approved manifest names the payout account {manifest.payout_account}; this payer's key is "
            f"{payout_account}"
        )
    elif not manifest.payout_account and network_passphrase != _SANDBOX_PASSPHRASE:
        reason = (
            "the approved manifest names no payout account: this ledger was not bound to one (payouts db init "
            "records it); approve the run again once it is"
        )
    if reason is not None:
        stop_run(session, run, reason)
    return reason


def check_before_signing(
    session: Session,
    approved: Manifest,
    group: Sequence[Payment],
    envelope: TransactionEnvelope,
    *,
    memo_mode: str,
    asset_code: str,
    asset_issuer: str,
    payout_account: str = "",
) -> str | None:
    """Why the transaction must not be signed, or None: each of its operations is re-derived
    from receipt bytes and must be a payment of the approved manifest; its memo must be the
    receipt hash (or the Merkle root of the derived hashes in batch mode). A claimable balance
    is signed only under the manifest's signed policy, to a payment the ledger sends that way,
    with exactly the farmer (unconditional) and the payout account (after the signed window)
    as claimants."""
    operations = envelope.transaction.operations
    if len(operations) != len(group):
        return f"the transaction holds {len(operations)} operations for {len(group)} payments"
    derived_group: list[Derived] = []
    for payment, operation in zip(group, operations, strict=True):
        try:
            derived = derive_payment(session, payment)
        except DerivationError as exc:
            return str(exc)
        reason = _difference(payment, derived)
        if reason is not None:
            return reason
        if derived not in approved.payments:
            return (
                f"{_name(payment)}: not in the approved manifest (receipt {derived.receipt_hash[:16]}, "
                f"{derived.amount_tft_units} TFT units to {derived.destination}); field payments_merkle_root"
            )
        if isinstance(operation, CreateClaimableBalance):
            source = (
                operation.source.account_id if operation.source is not None else envelope.transaction.source.account_id
            )
            reason = _claimable_refusal(payment, derived, operation, approved, payout_account, source)
            if reason is not None:
                return reason
        elif not isinstance(operation, PaymentOperation):
            return f"{_name(payment)}: its operation is a {type(operation).__name__}, not a payment (field kind)"
        elif payment.delivery != PaymentDelivery.PAYMENT:
            return f"{_name(payment)}: the ledger sends it as {payment.delivery}, the operation is a payment (field delivery)"
        elif operation.destination.account_id != derived.destination:
            return f"{_name(payment)}: the operation pays {operation.destination.account_id} (field destination)"
        if parse_tft(str(operation.amount)) != derived.amount_tft_units:
            return f"{_name(payment)}: the operation pays {operation.amount} TFT (field amount_tft_units)"
        if operation.asset.code != asset_code or operation.asset.issuer != asset_issuer:
            return f"{_name(payment)}: the operation pays another asset (field asset)"
        derived_group.append(derived)
    memo = envelope.transaction.memo
    expected = (
        bytes.fromhex(derived_group[0].receipt_hash)
        if memo_mode == "per_receipt"
        else merkle_root([d.receipt_hash for d in derived_group])
    )
    if getattr(memo, "memo_hash", None) != expected:
        what = "the receipt hash" if memo_mode == "per_receipt" else "the Merkle root of its receipt hashes"
        return f"the transaction's memo is not {what} (field memo; payments {[p.id for p in group]})"
    return None


def _claimable_refusal(
    payment: Payment,
    derived: Derived,
    operation: CreateClaimableBalance,
    approved: Manifest,
    payout_account: str,
    source: str,
) -> str | None:
    """Why a claimable-balance operation must not be signed, or None."""
    window = approved.claimable_reclaim_after_s
    if window is None:
        return f"{_name(payment)}: a claimable balance, which the signed manifest does not allow (field claimable_balances)"
    if payment.delivery != PaymentDelivery.CLAIMABLE_BALANCE:
        return f"{_name(payment)}: a claimable balance for a payment the ledger sends as {payment.delivery} (field delivery)"
    if source != payout_account:
        return f"{_name(payment)}: the claimable balance is not made by the payout account (field source)"
    claimants = operation.claimants
    if len(claimants) != 2:
        return f"{_name(payment)}: the claimable balance has {len(claimants)} claimants, not the farmer and the payout account (field claimants)"
    farmer, reclaimer = claimants
    if farmer.destination != derived.destination:
        return f"{_name(payment)}: the claimable balance's first claimant is {farmer.destination}, not {derived.destination} (field claimants)"
    if farmer.predicate.claim_predicate_type != ClaimPredicateType.CLAIM_PREDICATE_UNCONDITIONAL:
        return f"{_name(payment)}: the farmer's claim is not unconditional (field claimants)"
    if reclaimer.destination != payout_account:
        return f"{_name(payment)}: the claimable balance's second claimant is {reclaimer.destination}, not the payout account (field claimants)"
    inner = reclaimer.predicate.not_predicate
    if (
        reclaimer.predicate.claim_predicate_type != ClaimPredicateType.CLAIM_PREDICATE_NOT
        or inner is None
        or inner.claim_predicate_type != ClaimPredicateType.CLAIM_PREDICATE_BEFORE_RELATIVE_TIME
        or inner.rel_before != window
    ):
        return (
            f"{_name(payment)}: the payout account's claim is not 'not before the creation plus {window} s' "
            "as signed (field claimable_balances.reclaim_after_s)"
        )
    return None
