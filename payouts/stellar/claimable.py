"""Paying by claimable balance: the operation that sends a farmer's payout to a destination
without a TFT trustline, and what the chain says became of it.

The farmer may claim unconditionally (once the trustline exists); the payout account may
reclaim once the reclaim window has passed, so money never sits unclaimed for ever. The
transaction's memo (the receipt hash) stays the attribution, as for a payment.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from stellar_sdk import Asset, Claimant, ClaimPredicate, CreateClaimableBalance, Keypair, StrKey
from stellar_sdk import xdr as stellar_xdr

from payouts.money import format_tft
from payouts.stellar.build import MAX_AMOUNT_UNITS, BuildError
from payouts.stellar.horizon import HorizonClient


def claimable_balance_op(
    *,
    destination: str,
    payout_account: str,
    asset_code: str,
    asset_issuer: str,
    amount_units: int,
    reclaim_after_s: int,
    source: str | None = None,
) -> CreateClaimableBalance:
    """The farmer claims at any time; the payout account only `reclaim_after_s` seconds after
    the ledger that makes the balance closes (a relative time, made absolute by the chain)."""
    if not StrKey.is_valid_ed25519_public_key(destination):
        raise BuildError(f"destination {destination!r} is not a Stellar account")
    if destination == payout_account:
        raise BuildError("a claimable balance to the payout account itself pays nobody")
    if not 0 < amount_units <= MAX_AMOUNT_UNITS:
        raise BuildError(f"amount {amount_units} units to {destination} is not payable")
    if reclaim_after_s <= 0:
        raise BuildError(f"the reclaim window must be positive, not {reclaim_after_s} s")
    claimants = [
        Claimant(destination, ClaimPredicate.predicate_unconditional()),
        Claimant(
            payout_account,
            ClaimPredicate.predicate_not(ClaimPredicate.predicate_before_relative_time(reclaim_after_s)),
        ),
    ]
    return CreateClaimableBalance(Asset(asset_code, asset_issuer), format_tft(amount_units), claimants, source=source)


class BalanceState(StrEnum):
    LIVE = "live"  # sent, waiting for the farmer to claim
    CLAIMED = "claimed"  # the farmer has it: the receipt is settled
    RECLAIMED = "reclaimed"  # back on the payout account: the receipt is owed again
    UNKNOWN = "unknown"  # Horizon knows no such balance (not landed, or history trimmed)


@dataclass(frozen=True)
class BalanceSeen:
    state: BalanceState
    #: who claimed it (CLAIMED or RECLAIMED), and in which transaction
    claimant: str = ""
    tx_hash: str = ""


def read_balance(client: HorizonClient, balance_id: str, payout_account: str) -> BalanceSeen:
    """What became of a balance: live, claimed by the farmer, or reclaimed by the payout account."""
    if client.claimable_balance(balance_id) is not None:
        return BalanceSeen(BalanceState.LIVE)
    for op in client.claimable_balance_operations(balance_id):
        if op.get("type") == "claim_claimable_balance" and op.get("transaction_successful", True):
            claimant = str(op.get("claimant", ""))
            state = BalanceState.RECLAIMED if claimant == payout_account else BalanceState.CLAIMED
            return BalanceSeen(state, claimant, str(op.get("transaction_hash", "")))
    return BalanceSeen(BalanceState.UNKNOWN)


def balance_id_of(tx_source: str, tx_sequence: int, op_index: int) -> str:
    """The id the chain gives the balance operation `op_index` (from 0) of a transaction
    creates: the SHA-256 of the operation-id preimage (the transaction's source account and
    sequence, the index), in Horizon's hex with the type prefix. A transaction record carries
    its source and sequence even when Horizon leaves its envelope out."""
    preimage = stellar_xdr.HashIDPreimage(
        type=stellar_xdr.EnvelopeType.ENVELOPE_TYPE_OP_ID,
        operation_id=stellar_xdr.HashIDPreimageOperationID(
            source_account=Keypair.from_public_key(tx_source).xdr_account_id(),
            seq_num=stellar_xdr.SequenceNumber(stellar_xdr.Int64(tx_sequence)),
            op_num=stellar_xdr.Uint32(op_index),
        ),
    )
    return "00000000" + hashlib.sha256(preimage.to_xdr_bytes()).hexdigest()


def created_in(client: HorizonClient, balance_id: str, tx_hash: str) -> bool:
    """Horizon lists the balance's creation in that transaction (the record outlives the balance)."""
    return any(
        op.get("type") == "create_claimable_balance" and op.get("transaction_hash") == tx_hash
        for op in client.claimable_balance_operations(balance_id)
    )
