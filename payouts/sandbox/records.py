"""What a closed ledger keeps of an included transaction: its Horizon document (sources,
fees, envelope and result XDR, signatures, memo, preconditions, a fee bump's inner
transaction) and the accounts it concerns."""

from __future__ import annotations

import base64

from stellar_sdk import FeeBumpTransactionEnvelope
from stellar_sdk.memo import HashMemo, IdMemo, NoneMemo, ReturnHashMemo, TextMemo

from payouts.sandbox.entries import TxRecord, rfc3339
from payouts.sandbox.results import OpResult, transaction_result_xdr
from payouts.sandbox.validation import PendingTx


def transaction_record(
    pending: PendingTx,
    seq: int,
    order: int,
    now_s: int,
    tx_code: str,
    op_results: list[OpResult],
    fee_stroops: int,
) -> TxRecord:
    """The included transaction as Horizon shows it, with its result XDR."""
    tx = pending.transaction
    inner_hash = bytes.fromhex(pending.inner_hash_hex) if pending.inner_hash_hex else None
    result_xdr = transaction_result_xdr(
        fee_charged_stroops=fee_stroops, tx_code=tx_code, ops=op_results, inner_hash=inner_hash
    )
    participants = tx_participants(pending)
    env = pending.envelope
    inner_env = env.transaction.inner_transaction_envelope if isinstance(env, FeeBumpTransactionEnvelope) else env
    doc: dict = {
        "source_account": pending.source_id,
        "source_account_sequence": str(pending.sequence),
        "fee_account": pending.fee_source_id,
        "fee_charged": str(fee_stroops),
        "max_fee": str(pending.fee_bid_stroops),
        "operation_count": pending.op_count,
        "envelope_xdr": pending.envelope_xdr,
        "result_xdr": result_xdr,
        "signatures": [base64.b64encode(s.signature).decode() for s in env.signatures],
        **memo_fields(tx.memo),
        "_participants": sorted(participants),
    }
    pre = tx.preconditions
    if pre is not None and (pre.time_bounds is not None or pre.ledger_bounds is not None):
        doc["preconditions"] = {}
        if pre.time_bounds is not None:
            doc["preconditions"]["timebounds"] = {
                "min_time": str(pre.time_bounds.min_time),
                "max_time": str(pre.time_bounds.max_time),
            }
        if pre.ledger_bounds is not None:
            doc["preconditions"]["ledgerbounds"] = {
                "min_ledger": pre.ledger_bounds.min_ledger,
                "max_ledger": pre.ledger_bounds.max_ledger,
            }
        if pre.time_bounds is not None:
            doc["valid_after"] = rfc3339(pre.time_bounds.min_time)
            if pre.time_bounds.max_time:
                doc["valid_before"] = rfc3339(pre.time_bounds.max_time)
    if pending.fee_bump:
        doc["fee_bump_transaction"] = {"hash": pending.hash_hex, "signatures": doc["signatures"]}
        doc["inner_transaction"] = {
            "hash": pending.inner_hash_hex,
            "signatures": [base64.b64encode(s.signature).decode() for s in inner_env.signatures],
            "max_fee": str(tx.fee),
        }
    return TxRecord(pending.hash_hex, seq, order, now_s, tx_code == "tx_success", tx_code, op_results, doc)


def tx_participants(pending: PendingTx) -> set[str]:
    """Every account a transaction speaks for or pays: its sources and its operations' parties."""
    participants = {pending.source_id, pending.fee_source_id}
    for op in pending.transaction.operations:
        if op.source is not None:
            participants.add(op.source.account_id)
        for attr in ("destination", "trustor"):
            value = getattr(op, attr, None)
            if value is not None:
                participants.add(value if isinstance(value, str) else value.account_id)
        participants.update(claimant.destination for claimant in getattr(op, "claimants", ()))
    return participants


def memo_fields(memo) -> dict:
    """Memos as Horizon shows them: text decoded (bytes also in base64), id as a decimal
    string, hash and return as base64."""
    if memo is None or isinstance(memo, NoneMemo):
        return {"memo_type": "none"}
    if isinstance(memo, TextMemo):
        raw = memo.memo_text
        return {
            "memo_type": "text",
            "memo": raw.decode("utf-8", errors="replace"),
            "memo_bytes": base64.b64encode(raw).decode(),
        }
    if isinstance(memo, IdMemo):
        return {"memo_type": "id", "memo": str(memo.memo_id)}
    if isinstance(memo, HashMemo):
        return {"memo_type": "hash", "memo": base64.b64encode(memo.memo_hash).decode()}
    if isinstance(memo, ReturnHashMemo):
        return {"memo_type": "return", "memo": base64.b64encode(memo.memo_return).decode()}
    return {"memo_type": "none"}
