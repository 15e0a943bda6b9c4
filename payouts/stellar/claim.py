"""The payer's claim on chain, as Stellar sees it: a data entry on the payout account, its name
(network and period), its value (a nonce and the manifest hash prefix), the transaction that
writes it and the read that says whose it is."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from stellar_sdk import Account, TransactionBuilder, TransactionEnvelope

from payouts.stellar.horizon import HorizonClient
from payouts.stellar.network import PASSPHRASES

#: the prefix of every claim's data entry name
CLAIM_PREFIX = "payouts:claim"
NONCE_BYTES = 16
MANIFEST_PREFIX_BYTES = 16


def network_tag(network_passphrase: str) -> str:
    """A short name of the network: main, test, dev, or the passphrase's hash prefix."""
    for name, passphrase in PASSPHRASES.items():
        if passphrase == network_passphrase:
            return name
    return hashlib.sha256(network_passphrase.encode()).hexdigest()[:8]


def claim_name(network_passphrase: str, period_offset: int) -> str:
    """The data entry's name (at most 64 bytes): `payouts:claim:<network>:<period offset>`."""
    return f"{CLAIM_PREFIX}:{network_tag(network_passphrase)}:{period_offset}"


def claim_value(nonce: bytes, manifest_sha256: bytes) -> bytes:
    """The entry's value: the pay session's nonce, then the approved manifest's hash prefix."""
    if len(nonce) != NONCE_BYTES:
        raise ValueError(f"a claim nonce is {NONCE_BYTES} bytes")
    return nonce + manifest_sha256[:MANIFEST_PREFIX_BYTES]


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def build_claim_envelope(
    *,
    network_passphrase: str,
    payout_account: str,
    sequence: int,
    name: str,
    value: bytes,
    fee_stroops: int,
    max_time: int,
    max_ledger: int,
) -> TransactionEnvelope:
    """An unsigned transaction of the payout account on `sequence` (the account's + 1) that
    sets the claim: of two claimants reading the same sequence, only one lands."""
    builder = TransactionBuilder(Account(payout_account, sequence - 1), network_passphrase, base_fee=fee_stroops)
    builder.add_time_bounds(0, max_time)
    builder.set_ledger_bounds(0, max_ledger)
    builder.append_manage_data_op(name, value)
    return builder.build()


@dataclass(frozen=True)
class ClaimRead:
    """The claim as one read of the payout account saw it."""

    #: the entry's value, base64 (None: no claim)
    value_b64: str | None
    #: the account's sequence number in that read: a read older than a claim's transaction
    #: predates the claim
    account_sequence: int


def read_claim(client: HorizonClient, payout_account: str, name: str) -> ClaimRead | None:
    """The claim entry and the account's sequence; None when the account does not exist."""
    account = client.account(payout_account)
    if account is None:
        return None
    return ClaimRead(account.data.get(name), account.sequence)
