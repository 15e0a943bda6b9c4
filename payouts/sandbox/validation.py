"""What the sandbox refuses before a transaction reaches a ledger: the errors, the queued
form of an accepted transaction, and signature verification against an account's signers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from stellar_sdk import (
    FeeBumpTransactionEnvelope,
    StrKey,
    TransactionEnvelope,
)

from payouts.sandbox.results import OpResult, result_codes, transaction_result_xdr

# --------------------------------------------------------------------------------------------
# Transactions


class SubmissionRejected(Exception):
    """The transaction was refused before reaching a ledger (core's checkValid)."""

    def __init__(
        self,
        tx_code: str,
        ops: list[OpResult] | None = None,
        *,
        fee_charged_stroops: int = 0,
        fee_bump: bool = False,
        inner_hash: bytes | None = None,
        detail: str = "",
    ):
        super().__init__(tx_code)
        self.tx_code = tx_code
        self.ops = ops
        self.fee_bump = fee_bump
        self.result_xdr = transaction_result_xdr(
            fee_charged_stroops=fee_charged_stroops,
            tx_code=tx_code,
            ops=ops,
            inner_hash=inner_hash if fee_bump else None,
        )
        self.result_codes = result_codes(tx_code, ops, fee_bump=fee_bump)
        self.detail = detail


class EnvelopeMalformed(ValueError):
    """The bytes are not a transaction envelope this network accepts (Horizon's 400 malformed)."""


@dataclass(slots=True)
class PendingTx:
    hash_hex: str
    envelope: TransactionEnvelope | FeeBumpTransactionEnvelope
    envelope_xdr: str
    source_id: str
    fee_source_id: str
    sequence: int
    op_count: int
    fee_bid_stroops: int
    per_op_bid_stroops: int
    arrival: int
    #: keys whose signatures verified, on the inner transaction and on a fee bump's outer one
    inner_signed_by: set[str]
    outer_signed_by: set[str]
    inner_hash_hex: str | None
    not_before_ledger: int = 0

    @property
    def fee_bump(self) -> bool:
        return self.inner_hash_hex is not None

    @property
    def transaction(self):
        env = self.envelope
        if isinstance(env, FeeBumpTransactionEnvelope):
            return env.transaction.inner_transaction_envelope.transaction
        return env.transaction


# --------------------------------------------------------------------------------------------
# Signatures


def verified_keys(tx_hash: bytes, signatures, candidates: Iterable[str]) -> tuple[set[str], int]:
    """Keys among `candidates` with a valid signature, and how many signatures matched none."""
    by_hint: dict[bytes, list[tuple[str, bytes]]] = {}
    for key in candidates:
        raw = StrKey.decode_ed25519_public_key(key)
        by_hint.setdefault(raw[-4:], []).append((key, raw))
    signed: set[str] = set()
    unused = 0
    for decorated in signatures:
        matched = False
        for key, raw in by_hint.get(decorated.signature_hint, ()):
            if key in signed:
                continue
            try:
                VerifyKey(raw).verify(tx_hash, decorated.signature)
            except (BadSignatureError, ValueError):
                continue
            signed.add(key)
            matched = True
            break
        if not matched:
            unused += 1
    return signed, unused
