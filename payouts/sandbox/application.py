"""Applying an included transaction at ledger close: every operation in order, each
reported, and the whole transaction rolled back when one fails (one result code per
operation). Fees and sequence numbers are charged before this, in `Chain.close_ledger`."""

from __future__ import annotations

from collections.abc import Callable

from payouts.sandbox.entries import Account
from payouts.sandbox.operations import OperationApplier, op_kind, operation_doc
from payouts.sandbox.results import OpResult
from payouts.sandbox.validation import PendingTx


def apply_transaction(
    accounts: dict[str, Account],
    pending: PendingTx,
    seq: int,
    now_s: int,
    *,
    find_sponsor: Callable[[str], str | None],
) -> tuple[str, list[OpResult], list[tuple[dict, tuple[str, ...], list[dict]]], set[str]]:
    """Apply every operation to `accounts` (in place); on any failure restore what the
    operations changed. Returns the transaction's code, each operation's result, each
    operation's document, parties and effects, and the accounts it changed."""
    tx = pending.transaction
    originals: dict[str, Account | None] = {}

    def load(account_id: str) -> Account | None:
        return accounts.get(account_id)

    def touch(account: Account) -> Account:
        if account.account_id not in originals:
            originals[account.account_id] = account.clone()
        account.last_modified_ledger, account.last_modified_time_s = seq, now_s
        return account

    def create(account: Account) -> None:
        originals.setdefault(account.account_id, None)
        accounts[account.account_id] = account

    source = accounts[pending.source_id]
    op_docs: list[tuple[dict, tuple[str, ...], list[dict]]] = []
    for op in tx.operations:
        op_source_id = op.source.account_id if op.source is not None else pending.source_id
        doc, participants = operation_doc(op, op_source_id)
        op_docs.append(({**doc, "source_account": op_source_id}, participants, []))
    # Signers may have changed since submission: weigh the verified keys again.
    if not source.meets(source.low_threshold, pending.inner_signed_by):
        ops = [OpResult(op_kind(op), "op_success") for op in tx.operations]
        return "tx_bad_auth", ops, op_docs, set()
    op_results: list[OpResult] = []
    apply_op = OperationApplier(
        load,
        touch,
        create,
        seq,
        now_s,
        tx_source_id=pending.source_id,
        tx_sequence=pending.sequence,
        find_sponsor=find_sponsor,
    )
    for index, op in enumerate(tx.operations):
        op_source_id = op.source.account_id if op.source is not None else pending.source_id
        kind = op_kind(op)
        code = apply_op(op, op_source_id, pending.inner_signed_by)
        op_results.append(OpResult(kind, code, apply_op.created_balance_id))
        op_docs[index][2].extend(apply_op.take_effects())
    ok = all(result.code == "op_success" for result in op_results)
    if not ok:
        for account_id, original in originals.items():
            if original is None:
                accounts.pop(account_id, None)
            else:
                accounts[account_id] = original
        return "tx_failed", op_results, op_docs, set()
    return "tx_success", op_results, op_docs, set(originals)
