"""The ledger's kind words: what a payment, a run or a transaction is, as stored in its row.

StrEnum members compare equal to their stored strings, so rows written before these enums read
back unchanged. A new word is one new member here (and nothing else in the schema).
"""

from __future__ import annotations

from enum import StrEnum


class PaymentKind(StrEnum):
    RECEIPT = "receipt"  # pays one node's receipt of the run
    RETRY = "retry"  # pays a held or failed payment of an earlier run again
    CORRECTION = "correction"  # an entry correcting an earlier payment (history is never edited)


class PaymentDelivery(StrEnum):
    """How a payment reaches its destination."""

    PAYMENT = "payment"  # a payment operation
    CLAIMABLE_BALANCE = "claimable_balance"  # a claimable balance (the destination had no trustline)


class PayoutBasis(StrEnum):
    """Where the TFT of a payment comes from (SPEC: the export's payout basis)."""

    POC_TREASURY = "poc_treasury"
    POC_MINTED = "poc_minted"
    REVENUE_SHARE = "revenue_share"
    CORRECTION = "correction"


class TransactionPurpose(StrEnum):
    PAYMENT = "payment"  # pays receipts
    FUNDING = "funding"  # treasury -> payout account, two-tier mode
    SWEEP = "sweep"  # returns what a payout account holds to the treasury
    CLAIM = "claim"  # the payer's claim transaction
    RECLAIM = "reclaim"  # takes unclaimed claimable balances back into the payout account


class RunKind(StrEnum):
    MONTHLY = "monthly"  # a period's calculation
    OFF_CYCLE = "off_cycle"  # outstanding retries paid between months


class HashKind(StrEnum):
    """Which hash of one of our transactions a `transaction_hashes` row holds."""

    INNER = "inner"  # the transaction's own hash (the inner hash under a fee bump)
    FEE_BUMP = "fee_bump"
