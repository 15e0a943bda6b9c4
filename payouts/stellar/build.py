"""Building payment transactions: bounds, memo, sequence, fees. No secrets here.

The 7-decimal amount strings stellar-sdk wants are made only in this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from stellar_sdk import (
    Account,
    Asset,
    FeeBumpTransactionEnvelope,
    StrKey,
    TransactionBuilder,
    TransactionEnvelope,
)
from stellar_sdk import xdr as stellar_xdr

from payouts.money import format_tft, parse_tft

MAX_OPERATIONS = 100  # Stellar's limit per transaction (the SDK does not enforce it)
MAX_AMOUNT_UNITS = 2**63 - 1  # int64 amounts on chain


class BuildError(ValueError):
    """A payment that must not go into a transaction (the SDK would not stop it)."""


@dataclass(frozen=True)
class PaymentOp:
    destination: str
    amount_units: int
    #: sent as a claimable balance the payout account may take back after this many seconds
    #: (the destination has no trustline); None: a payment operation
    claimable_reclaim_after_s: int | None = None


def build_payment_envelope(
    *,
    network_passphrase: str,
    source_account: str,
    sequence: int,
    payout_account: str,
    asset_code: str,
    asset_issuer: str,
    operations: list[PaymentOp],
    memo_hash: bytes,
    fee_per_operation_stroops: int,
    min_time: int,
    max_time: int,
    max_ledger: int = 0,
) -> TransactionEnvelope:
    """An unsigned envelope: `sequence` is the transaction's own number (account's + 1).

    Payment operations come from the payout account; the transaction (and its fee) may come
    from a channel account so that several transactions land in one ledger.
    """
    if not 1 <= len(operations) <= MAX_OPERATIONS:
        raise BuildError(f"a transaction holds 1 to {MAX_OPERATIONS} payments, not {len(operations)}")
    if len(memo_hash) != 32:
        raise BuildError("a hash memo is 32 bytes")
    asset = Asset(asset_code, asset_issuer)
    builder = TransactionBuilder(
        Account(source_account, sequence - 1),
        network_passphrase,
        base_fee=fee_per_operation_stroops,
    )
    builder.add_time_bounds(min_time, max_time)
    if max_ledger:
        # valid in ledgers below max_ledger only: "not found as of max_ledger" proves it never lands
        builder.set_ledger_bounds(0, max_ledger)
    builder.add_hash_memo(memo_hash)
    op_source = payout_account if payout_account != source_account else None
    for op in operations:
        if not StrKey.is_valid_ed25519_public_key(op.destination):
            raise BuildError(f"destination {op.destination!r} is not a Stellar account")
        if not 0 < op.amount_units <= MAX_AMOUNT_UNITS:
            raise BuildError(f"amount {op.amount_units} units to {op.destination} is not payable")
        if op.claimable_reclaim_after_s is not None:
            from payouts.stellar.claimable import claimable_balance_op  # it builds on this module

            builder.append_operation(
                claimable_balance_op(
                    destination=op.destination,
                    payout_account=payout_account,
                    asset_code=asset_code,
                    asset_issuer=asset_issuer,
                    amount_units=op.amount_units,
                    reclaim_after_s=op.claimable_reclaim_after_s,
                    source=op_source,
                )
            )
            continue
        builder.append_payment_op(op.destination, asset, format_tft(op.amount_units), source=op_source)
    return builder.build()


def build_fee_bump_envelope(
    *,
    network_passphrase: str,
    inner_envelope_xdr: str,
    fee_per_operation_stroops: int,
) -> FeeBumpTransactionEnvelope:
    """An unsigned fee bump of a signed transaction, paid by the inner transaction's source.

    The inner transaction keeps its bytes, hash and sequence number, so the original and any
    of its bumps can land at most once between them: raising the fee is not a rebuild.
    """
    inner = TransactionEnvelope.from_xdr(inner_envelope_xdr, network_passphrase)
    return TransactionBuilder.build_fee_bump_transaction(
        fee_source=inner.transaction.source.account_id,
        base_fee=fee_per_operation_stroops,
        inner_transaction_envelope=inner,
        network_passphrase=network_passphrase,
    )


def envelope_amount_text(amount: str) -> str:
    """An operation's amount as read back from an envelope, in plain decimals: the SDK gives a
    small one in exponent form (one unit reads "1E-7")."""
    return format(Decimal(amount), "f")


def envelope_units(amount: str) -> int:
    """TFT units of an operation's amount read back from an envelope."""
    return parse_tft(envelope_amount_text(amount))


def parse_envelope(envelope_xdr: str, network_passphrase: str) -> TransactionEnvelope | FeeBumpTransactionEnvelope:
    raw = stellar_xdr.TransactionEnvelope.from_xdr(envelope_xdr)
    if raw.type == stellar_xdr.EnvelopeType.ENVELOPE_TYPE_TX_FEE_BUMP:
        return FeeBumpTransactionEnvelope.from_xdr_object(raw, network_passphrase)
    return TransactionEnvelope.from_xdr_object(raw, network_passphrase)


def fee_bid_per_operation(envelope_xdr: str, network_passphrase: str) -> int:
    """The per-operation fee a (possibly fee-bumped) envelope bids."""
    envelope = parse_envelope(envelope_xdr, network_passphrase)
    if isinstance(envelope, FeeBumpTransactionEnvelope):
        outer = envelope.transaction  # the bump bids for the inner operations and itself
        return outer.fee // (len(outer.inner_transaction_envelope.transaction.operations) + 1)
    return envelope.transaction.fee // len(envelope.transaction.operations)


def inner_envelope_xdr(envelope_xdr: str, network_passphrase: str) -> str:
    """The transaction itself, without any fee bump around it."""
    envelope = parse_envelope(envelope_xdr, network_passphrase)
    if isinstance(envelope, FeeBumpTransactionEnvelope):
        return envelope.transaction.inner_transaction_envelope.to_xdr()
    return envelope_xdr
