"""What the sandbox refuses before a transaction reaches a ledger: the errors, the queued
form of an accepted transaction, signature verification against an account's signers, and
the checks stellar-core's `checkValid` makes at submission (sequence, signatures against the
source's low threshold and each operation's threshold, time and ledger bounds, fee bid, fee
balance, per-operation malformations)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from stellar_sdk import (
    FeeBumpTransactionEnvelope,
    StrKey,
    TransactionEnvelope,
)

from payouts.sandbox.network import BASE_FEE_STROOPS, MAX_OPS_PER_TX, MAX_SIGNERS
from payouts.sandbox.operations import op_kind, op_threshold, static_op_check
from payouts.sandbox.results import OpResult, result_codes, transaction_result_xdr

if TYPE_CHECKING:
    from payouts.sandbox.chain import Chain
    from payouts.sandbox.entries import Account

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


# --------------------------------------------------------------------------------------------
# Checks at submission


def check_valid(chain: Chain, envelope, envelope_xdr: str, hash_hex: str, *, arrival: int) -> PendingTx:
    """Core's checkValid against the chain as it stands and its queue: the transaction queued
    as `arrival`, or SubmissionRejected / EnvelopeMalformed."""
    fee_bump = isinstance(envelope, FeeBumpTransactionEnvelope)
    if fee_bump:
        outer = envelope.transaction
        inner_env = outer.inner_transaction_envelope
        tx = inner_env.transaction
        inner_hash = inner_env.hash()
        fee_source_id = outer.fee_source.account_id
        fee_bid = outer.fee
    else:
        inner_env = envelope
        tx = envelope.transaction
        inner_hash = None
        fee_source_id = tx.source.account_id
        fee_bid = tx.fee

    def reject(code: str, ops: list[OpResult] | None = None, fee: int = 0, detail: str = ""):
        return SubmissionRejected(
            code, ops, fee_charged_stroops=fee, fee_bump=fee_bump, inner_hash=inner_hash, detail=detail
        )

    op_count = len(tx.operations)
    if op_count == 0:
        raise reject("tx_missing_operation")
    if op_count > MAX_OPS_PER_TX:
        raise EnvelopeMalformed(f"more than {MAX_OPS_PER_TX} operations")
    if len(envelope.signatures) > MAX_SIGNERS or len(inner_env.signatures) > MAX_SIGNERS:
        raise EnvelopeMalformed(f"more than {MAX_SIGNERS} signatures")
    fee_ops = op_count + 1 if fee_bump else op_count
    per_op_bid = fee_bid // fee_ops
    min_fee = chain.min_fee_per_op()
    if fee_bump and tx.fee > fee_bid:
        raise reject("tx_insufficient_fee", fee=tx.fee * fee_ops // op_count)
    if per_op_bid < BASE_FEE_STROOPS or (not fee_bump and tx.fee < BASE_FEE_STROOPS * op_count):
        raise reject("tx_insufficient_fee", fee=BASE_FEE_STROOPS * fee_ops)

    check_bounds(tx, reject, next_ledger=chain.latest.sequence + 1, now_s=chain.now_s())

    source_id = tx.source.account_id
    source = chain.accounts.get(source_id)
    if source is None:
        raise reject("tx_no_source_account")
    expected_seq = source.seq_num + 1 + sum(1 for p in chain.queue.values() if p.source_id == source_id)
    if tx.sequence != expected_seq:
        raise reject("tx_bad_seq", detail=f"expected sequence {expected_seq}")

    # Signatures: every account the transaction speaks for can have signed.
    op_sources = {op.source.account_id for op in tx.operations if op.source is not None}
    candidates: set[str] = set()
    for account_id in op_sources | {source_id}:
        holder = chain.accounts.get(account_id)
        candidates.update(holder.signer_weights() if holder else ())
        candidates.add(account_id)
    inner_signed, unused = verified_keys(inner_env.hash(), inner_env.signatures, candidates)
    if not source.meets(source.low_threshold, inner_signed):
        raise reject("tx_bad_auth")
    outer_signed: set[str] = set()
    fee_source = chain.accounts.get(fee_source_id)
    if fee_bump:
        if fee_source is None:
            raise SubmissionRejected("tx_no_source_account", fee_bump=False)
        outer_signed, outer_unused = verified_keys(
            envelope.hash(), envelope.signatures, set(fee_source.signer_weights()) | {fee_source_id}
        )
        if not fee_source.meets(fee_source.low_threshold, outer_signed):
            raise SubmissionRejected("tx_bad_auth", fee_bump=False)
        if outer_unused:
            raise SubmissionRejected("tx_bad_auth_extra", fee_bump=False)

    ops, failed = check_ops(chain.accounts, tx, source_id, inner_signed)
    if failed:
        raise reject("tx_failed", ops)
    if unused:
        raise reject("tx_bad_auth_extra")
    if fee_source is None or fee_source.available_stroops() < fee_bid:
        raise reject("tx_insufficient_balance")
    if per_op_bid < min_fee:
        raise reject(
            "tx_insufficient_fee",
            fee=min_fee * fee_ops,
            detail="the transaction queue is full: bid above the cheapest queued fee",
        )
    return PendingTx(
        hash_hex=hash_hex,
        envelope=envelope,
        envelope_xdr=envelope_xdr,
        source_id=source_id,
        fee_source_id=fee_source_id,
        sequence=tx.sequence,
        op_count=op_count,
        fee_bid_stroops=fee_bid,
        per_op_bid_stroops=per_op_bid,
        arrival=arrival,
        inner_signed_by=inner_signed,
        outer_signed_by=outer_signed,
        inner_hash_hex=inner_hash.hex() if inner_hash else None,
    )


def check_bounds(tx, reject, *, next_ledger: int, now_s: int) -> None:
    """Time and ledger bounds for inclusion in ledger `next_ledger` closing at `now_s`."""
    pre = tx.preconditions
    if pre is None:
        return
    if pre.time_bounds is not None:
        if pre.time_bounds.min_time and pre.time_bounds.min_time > now_s:
            raise reject("tx_too_early")
        if pre.time_bounds.max_time and pre.time_bounds.max_time < now_s:
            raise reject("tx_too_late")
    if pre.ledger_bounds is not None:
        if pre.ledger_bounds.min_ledger > next_ledger:
            raise reject("tx_too_early")
        # max_ledger is exclusive, as in CAP-21
        if pre.ledger_bounds.max_ledger and next_ledger >= pre.ledger_bounds.max_ledger:
            raise reject("tx_too_late")
    if pre.min_sequence_number is not None or pre.min_sequence_age or pre.min_sequence_ledger_gap or pre.extra_signers:
        raise reject("tx_not_supported", detail="only time and ledger bounds are supported")


def check_ops(accounts: dict[str, Account], tx, source_id: str, signed_by: set[str]) -> tuple[list[OpResult], bool]:
    """Each operation's own malformations, source account and signature threshold."""
    ops: list[OpResult] = []
    failed = False
    for op in tx.operations:
        op_source_id = op.source.account_id if op.source is not None else source_id
        kind = op_kind(op)
        code = static_op_check(op, op_source_id)
        if code is None:
            holder = accounts.get(op_source_id)
            if holder is None:
                code = "op_no_source_account"
            else:
                level = op_threshold(op)
                threshold = {
                    "low": holder.low_threshold,
                    "med": holder.med_threshold,
                    "high": holder.high_threshold,
                }[level]
                if not holder.meets(threshold, signed_by):
                    code = "op_bad_auth"
        ops.append(OpResult(kind, code or "op_success"))
        failed = failed or code is not None
    return ops, failed
