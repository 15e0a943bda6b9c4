"""The XDR a Horizon client may decode from the sandbox: ledger headers and fee changes.

`header_xdr` encodes a closed ledger's header (its SHA-256 is the ledger's hash), and
`fee_meta_xdr` the account entry of a transaction's fee source before and after the fee, as
stellar-core's `LedgerEntryChanges` (state, then updated).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from stellar_sdk import Keypair, SignerKey
from stellar_sdk import xdr as x

from payouts.sandbox.network import BASE_RESERVE_STROOPS, PROTOCOL_VERSION, TOTAL_COINS_STROOPS

if TYPE_CHECKING:
    from payouts.sandbox.entries import Account, LedgerHeader

_ZERO_HASH = x.Hash(bytes(32))


def _hash(hex_text: str) -> x.Hash:
    return x.Hash(bytes.fromhex(hex_text)) if hex_text else _ZERO_HASH


def header_xdr_object(header: LedgerHeader) -> x.LedgerHeader:
    return x.LedgerHeader(
        ledger_version=x.Uint32(PROTOCOL_VERSION),
        previous_ledger_hash=_hash(header.prev_hash_hex),
        scp_value=x.StellarValue(
            tx_set_hash=_hash(header.tx_set_hash_hex),
            close_time=x.TimePoint(x.Uint64(header.closed_at_s)),
            upgrades=[],
            ext=x.StellarValueExt(x.StellarValueType.STELLAR_VALUE_BASIC),
        ),
        tx_set_result_hash=_ZERO_HASH,
        bucket_list_hash=_ZERO_HASH,
        ledger_seq=x.Uint32(header.sequence),
        total_coins=x.Int64(TOTAL_COINS_STROOPS),
        fee_pool=x.Int64(header.fee_pool_stroops),
        inflation_seq=x.Uint32(0),
        id_pool=x.Uint64(0),
        base_fee=x.Uint32(header.base_fee_stroops),
        base_reserve=x.Uint32(BASE_RESERVE_STROOPS),
        max_tx_set_size=x.Uint32(header.max_ops),
        skip_list=[_ZERO_HASH] * 4,
        ext=x.LedgerHeaderExt(0),
    )


def header_xdr(header: LedgerHeader) -> str:
    """Base64 `LedgerHeader`."""
    return header_xdr_object(header).to_xdr()


def header_hash_hex(header: LedgerHeader) -> str:
    """The ledger's hash: SHA-256 of its header's XDR, as on Stellar."""
    return hashlib.sha256(header_xdr_object(header).to_xdr_bytes()).hexdigest()


def tx_set_hash_hex(tx_hashes: list[str]) -> str:
    return hashlib.sha256(b"".join(bytes.fromhex(h) for h in tx_hashes)).hexdigest()


def _account_id(account_id: str) -> x.AccountID:
    return Keypair.from_public_key(account_id).xdr_account_id()


def account_entry(account: Account, *, balance_stroops: int, seq_num: int, last_modified_ledger: int) -> x.LedgerEntry:
    signers = [
        x.Signer(key=SignerKey.ed25519_public_key(key).to_xdr_object(), weight=x.Uint32(weight))
        for key, weight in sorted(account.signers.items())
    ]
    # stellar-core keeps signers sorted by their XDR key
    signers.sort(key=lambda s: s.key.to_xdr_bytes())
    thresholds = bytes([account.master_weight, account.low_threshold, account.med_threshold, account.high_threshold])
    entry = x.AccountEntry(
        account_id=_account_id(account.account_id),
        balance=x.Int64(balance_stroops),
        seq_num=x.SequenceNumber(x.Int64(seq_num)),
        num_sub_entries=x.Uint32(account.num_subentries),
        inflation_dest=None,
        flags=x.Uint32(account.flags),
        home_domain=x.String32(account.home_domain.encode()),
        thresholds=x.Thresholds(thresholds),
        signers=signers,
        ext=x.AccountEntryExt(0),
    )
    return x.LedgerEntry(
        last_modified_ledger_seq=x.Uint32(last_modified_ledger),
        data=x.LedgerEntryData(x.LedgerEntryType.ACCOUNT, account=entry),
        ext=x.LedgerEntryExt(0),
    )


def fee_meta_xdr(fee_source: Account, *, fee_stroops: int, ledger_seq: int) -> str:
    """Base64 `LedgerEntryChanges` of charging `fee_stroops` to `fee_source` (its state before)."""
    before = account_entry(
        fee_source,
        balance_stroops=fee_source.balance_stroops,
        seq_num=fee_source.seq_num,
        last_modified_ledger=fee_source.last_modified_ledger,
    )
    after = account_entry(
        fee_source,
        balance_stroops=fee_source.balance_stroops - fee_stroops,
        seq_num=fee_source.seq_num,
        last_modified_ledger=ledger_seq,
    )
    return x.LedgerEntryChanges(
        [
            x.LedgerEntryChange(x.LedgerEntryChangeType.LEDGER_ENTRY_STATE, state=before),
            x.LedgerEntryChange(x.LedgerEntryChangeType.LEDGER_ENTRY_UPDATED, updated=after),
        ]
    ).to_xdr()
