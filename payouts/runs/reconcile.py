"""Reconciliation: the payout account's payments on chain against the ledger (SPEC 5, rule 7).

A payment on chain that the ledger lacks, or a paid ledger entry the chain lacks, or one whose
memo, destination or amount differ, is reported loudly and never "fixed" by paying again.
Each chain operation is counted once, by its operation id.
"""

from __future__ import annotations

import base64
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import orjson
import structlog
from sqlmodel import Session, col, select

from payouts.ledger.kinds import PaymentDelivery, TransactionPurpose
from payouts.ledger.models import LedgerEvent, Payment, Run, StellarTransaction, TransactionHash
from payouts.ledger.repository import id_of
from payouts.ledger.states import ON_CHAIN_PAYMENT_STATUSES, RunStatus, transition
from payouts.money import parse_tft
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.merkle import merkle_root

log = structlog.get_logger(__name__)


@dataclass
class Reconciliation:
    run_id: int
    paid_in_ledger: int = 0
    paid_on_chain: int = 0
    ledger_total_units: int = 0
    chain_total_units: int = 0
    differences: list[str] = field(default_factory=list)
    unknown_on_chain: list[str] = field(default_factory=list)  # chain payments no run knows
    #: payout -> treasury payments under this run's manifest hash the ledger lacks: a sweep the
    #: ledger lost, adopted by the sweep step (never swept again)
    lost_sweeps: list[str] = field(default_factory=list)
    #: why nothing was compared yet: the Horizon read has not seen every ledger the run's
    #: payments landed in (a lagging replica); the run waits, it is not stopped
    behind: str = ""

    @property
    def clean(self) -> bool:
        return not self.behind and not self.differences and not self.unknown_on_chain


def reconcile_run(
    session: Session,
    run: Run,
    client: HorizonClient,
    payout_account: str,
    asset_code: str,
    asset_issuer: str,
    *,
    treasury: str | None = None,
) -> Reconciliation:
    result = Reconciliation(run_id=id_of(run))
    # sweeps return leftover funding to the treasury: not payments of receipts (sweep.py checks them)
    sweep_ids = set(
        session.exec(select(StellarTransaction.id).where(StellarTransaction.purpose == TransactionPurpose.SWEEP)).all()
    )
    sweeps = {
        h
        for pair in session.exec(
            select(StellarTransaction.tx_hash, StellarTransaction.fee_bump_hash).where(
                StellarTransaction.purpose == TransactionPurpose.SWEEP
            )
        )
        for h in pair
        if h
    } | set(
        session.exec(select(TransactionHash.tx_hash).where(col(TransactionHash.transaction_id).in_(sweep_ids))).all()
    )
    manifest_hex = session.exec(
        select(StellarTransaction.memo_hash).where(
            StellarTransaction.run_id == run.id, StellarTransaction.purpose == TransactionPurpose.FUNDING
        )
    ).first()
    everything_paid = session.exec(
        select(Payment).where(Payment.run_id == run.id, col(Payment.status).in_(sorted(ON_CHAIN_PAYMENT_STATUSES)))
    ).all()
    # Horizon's payment history has no claimable balances: each is compared by its own record
    paid = [p for p in everything_paid if p.delivery != PaymentDelivery.CLAIMABLE_BALANCE]
    _compare_balances(
        client, [p for p in everything_paid if p.delivery == PaymentDelivery.CLAIMABLE_BALANCE], payout_account, result
    )
    ledger_by_tx: dict[str, Counter] = defaultdict(Counter)
    for payment in paid:
        result.ledger_total_units += payment.amount_tft_units
        if payment.tx_hash is None:  # a paid row always has one; an edited ledger may not
            result.differences.append(f"payment {payment.id}: paid in the ledger without a transaction hash")
            continue
        ledger_by_tx[payment.tx_hash][(payment.destination, payment.amount_tft_units)] += 1
    result.paid_in_ledger += len(paid)
    # a Horizon behind the ledgers our payments landed in would report them missing: wait for it
    landed_up_to = max((p.ledger for p in paid if p.ledger is not None), default=None)
    if landed_up_to is not None:
        seen = client.latest_ledger().sequence
        if seen < landed_up_to:
            result.behind = (
                f"Horizon has seen ledger {seen}, the run's payments landed up to ledger {landed_up_to}: "
                "reconciled once it has caught up"
            )
            return result
    # a transaction is on chain under its own hash, or that of any fee bump that wrapped it
    memos: dict[str, str] = {}
    for tx in session.exec(select(StellarTransaction).where(StellarTransaction.run_id == run.id)).all():
        memos[tx.tx_hash] = tx.memo_hash
        if tx.fee_bump_hash:
            memos[tx.fee_bump_hash] = tx.memo_hash
    for tx_hash, memo_hash in session.exec(
        select(TransactionHash.tx_hash, StellarTransaction.memo_hash)
        .join(StellarTransaction, col(TransactionHash.transaction_id) == col(StellarTransaction.id))
        .where(StellarTransaction.run_id == run.id)
    ):
        memos[tx_hash] = memo_hash
    # payments adopted from the chain (a restored ledger's lost transactions: payment/scan.py) have
    # no transaction row; the adoption event names the chain transaction, its memo is the receipt
    # hash or the Merkle root of the receipt hashes it paid
    adopted = {
        orjson.loads(detail).get("tx_hash")
        for detail in session.exec(select(LedgerEvent.detail_json).where(LedgerEvent.event == "payment.adopted"))
    }
    adopted.discard(None)
    memo_choices: dict[str, set[str]] = {}
    adopted_here: dict[str, list[str]] = defaultdict(list)
    for payment in paid:
        if payment.tx_hash is not None and payment.tx_hash in adopted and payment.tx_hash not in memos:
            adopted_here[payment.tx_hash].append(payment.receipt_hash)
    for tx_hash, receipt_hashes in adopted_here.items():
        root = merkle_root(receipt_hashes).hex()
        memos[tx_hash] = root
        memo_choices[tx_hash] = {root, receipt_hashes[0]} if len(receipt_hashes) == 1 else {root}
    all_known = (
        {
            h
            for pair in session.exec(select(StellarTransaction.tx_hash, StellarTransaction.fee_bump_hash))
            for h in pair
            if h
        }
        | set(session.exec(select(TransactionHash.tx_hash)).all())
        | adopted
    )
    chain_memos: dict[str, str | None] = {}

    chain_by_tx: dict[str, Counter] = defaultdict(Counter)
    seen_operations: set[str] = set()
    for record in client.payments(payout_account):
        # each chain operation counts once, however often paging (a replica, a retried page)
        # hands it over
        operation_id = str(record.get("id") or record.get("paging_token") or "")
        if operation_id:
            if operation_id in seen_operations:
                continue
            seen_operations.add(operation_id)
        if record.get("type") != "payment" or record.get("from") != payout_account:
            continue
        if not record.get("transaction_successful", True):
            continue
        if record.get("asset_code") != asset_code or record.get("asset_issuer") != asset_issuer:
            continue
        tx_hash = record["transaction_hash"]
        amount_units = parse_tft(record["amount"])
        if tx_hash in sweeps:
            continue
        if (
            tx_hash not in all_known
            and treasury is not None
            and record.get("to") == treasury
            and manifest_hex is not None
            and _memo_hex((record.get("transaction") or {}).get("memo")) == manifest_hex
        ):
            result.lost_sweeps.append(tx_hash)
            continue
        if tx_hash not in all_known:
            result.unknown_on_chain.append(f"{tx_hash}: {record['amount']} TFT to {record['to']}")
            continue
        if tx_hash in memos:
            if "transaction" in record:  # joined: the memo comes with the payment, no extra request
                chain_memos[tx_hash] = _memo_hex(record["transaction"].get("memo"))
            chain_by_tx[tx_hash][(record["to"], amount_units)] += 1
            result.chain_total_units += amount_units
            result.paid_on_chain += 1

    for tx_hash in sorted(ledger_by_tx.keys() | chain_by_tx.keys()):
        if ledger_by_tx[tx_hash] != chain_by_tx[tx_hash]:
            result.differences.append(
                f"transaction {tx_hash}: ledger {dict(ledger_by_tx[tx_hash])} != chain {dict(chain_by_tx[tx_hash])}"
            )
            continue
        if tx_hash in chain_memos:
            memo_hex = chain_memos[tx_hash]
        else:
            info = client.transaction(tx_hash)
            memo_hex = _memo_hex(info.memo if info else None)
        if memo_hex not in memo_choices.get(tx_hash, {memos.get(tx_hash)}):
            result.differences.append(f"transaction {tx_hash}: memo {memo_hex} != ledger {memos.get(tx_hash)}")
    return result


def _compare_balances(
    client: HorizonClient, payments: list[Payment], payout_account: str, result: Reconciliation
) -> None:
    """Each payment sent as a claimable balance against the operation that created it: made
    by the payout account in the payment's transaction, for its amount, to its destination."""
    shared = _shared_balance_ids(payments)
    for payment in payments:
        result.ledger_total_units += payment.amount_tft_units
        result.paid_in_ledger += 1
        if payment.claimable_balance_id in shared:
            # one balance pays one receipt: an edited row may name another payment's balance
            result.differences.append(
                f"payment {payment.id}: its claimable balance {payment.claimable_balance_id} is recorded for "
                f"payments {', '.join(str(i) for i in shared[payment.claimable_balance_id])}"
            )
            continue
        created = [
            op
            for op in client.claimable_balance_operations(payment.claimable_balance_id or "")
            if op.get("type") == "create_claimable_balance" and op.get("transaction_successful", True)
        ]
        if len(created) != 1:
            result.differences.append(
                f"payment {payment.id}: its claimable balance {payment.claimable_balance_id} is not on chain"
            )
            continue
        op = created[0]
        claimants = [c.get("destination") for c in op.get("claimants", [])]
        if (
            op.get("transaction_hash") != payment.tx_hash
            or op.get("source_account") != payout_account
            or parse_tft(op.get("amount", "0")) != payment.amount_tft_units
            or claimants != [payment.destination, payout_account]
        ):
            result.differences.append(
                f"payment {payment.id}: its claimable balance differs from the ledger (transaction "
                f"{op.get('transaction_hash')}, {op.get('amount')} TFT to {claimants})"
            )
            continue
        result.chain_total_units += payment.amount_tft_units
        result.paid_on_chain += 1


def _shared_balance_ids(payments: list[Payment]) -> dict[str, list[int]]:
    """Balance ids the ledger records for more than one payment, with those payments."""
    by_id: dict[str, list[int]] = defaultdict(list)
    for payment in payments:
        if payment.claimable_balance_id:
            by_id[payment.claimable_balance_id].append(id_of(payment))
    return {balance: ids for balance, ids in by_id.items() if len(ids) > 1}


def _memo_hex(memo_b64: str | None) -> str | None:
    return base64.b64decode(memo_b64).hex() if memo_b64 else None


def record_reconciliation(session: Session, run: Run, result: Reconciliation) -> None:
    """A clean paid run becomes `reconciled`; a mismatch stops it for an operator; a Horizon
    that is behind changes nothing (the run is reconciled again later)."""
    if result.behind:
        log.warning("run.reconcile.horizon_behind", run_id=run.id, reason=result.behind)
        return
    if result.clean:
        if run.status == RunStatus.PAID:
            transition(
                session,
                Run,
                id_of(run),
                RunStatus.PAID,
                RunStatus.RECONCILED,
                event="run.reconciled",
                detail={"payments": result.paid_in_ledger},
            )
        return
    reason = "reconciliation mismatch: " + "; ".join((result.differences + result.unknown_on_chain)[:5])
    log.error(
        "run.reconcile.mismatch",
        run_id=run.id,
        differences=result.differences,
        unknown_on_chain=result.unknown_on_chain,
    )
    if run.status == RunStatus.PAID:
        transition(
            session,
            Run,
            id_of(run),
            RunStatus.PAID,
            RunStatus.STOPPED,
            event="run.stopped",
            detail={"reason": reason},
            status_reason=reason[:500],
        )
