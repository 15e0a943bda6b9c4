"""Recording a Stellar transaction of ours: its row, its own hash and the event that says so.

Every transaction the service signs (payment, funding, sweep, claim, reclaim) or adopts from
the chain is written here first, so a transaction on chain is always one the ledger can
recognise by its hash, whatever it paid.
"""

from __future__ import annotations

from sqlmodel import Session

from payouts.ledger.events import record_event
from payouts.ledger.kinds import HashKind
from payouts.ledger.models import StellarTransaction, TransactionHash
from payouts.ledger.repository import id_of
from payouts.ledger.states import TransactionStatus
from payouts.ledger.types import utcnow


def record_transaction(
    session: Session,
    *,
    run_id: int,
    purpose: str,
    source_account: str,
    sequence: int,
    envelope_xdr: str,
    tx_hash: str,
    fee_stroops: int,
    memo_hash: str,
    max_time: int,
    min_time: int = 0,
    built_ledger: int | None = None,
    max_ledger: int | None = None,
    ledger: int | None = None,
    status: TransactionStatus = TransactionStatus.BUILT,
    event: str | None = None,
    detail: dict | None = None,
) -> StellarTransaction:
    """Add the transaction and its inner hash (flushed, so it has an id); with `event`, the
    ledger event of its arrival in `status`, whose detail starts with the hash."""
    now = utcnow()
    tx = StellarTransaction(
        run_id=run_id,
        purpose=purpose,
        source_account=source_account,
        sequence=sequence,
        min_time=min_time,
        max_time=max_time,
        built_ledger=built_ledger,
        max_ledger=max_ledger,
        fee_stroops=fee_stroops,
        memo_hash=memo_hash,
        envelope_xdr=envelope_xdr,
        tx_hash=tx_hash,
        status=status,
        ledger=ledger,
        created_at=now,
        updated_at=now,
    )
    session.add(tx)
    session.flush()
    session.add(TransactionHash(tx_hash=tx.tx_hash, transaction_id=id_of(tx), kind=HashKind.INNER, created_at=now))
    if event is not None:
        record_event(
            session,
            entity="stellar_transactions",
            entity_id=tx.id,
            run_id=run_id,
            event=event,
            to_status=status,
            detail={"tx_hash": tx.tx_hash, **(detail or {})},
        )
    return tx
