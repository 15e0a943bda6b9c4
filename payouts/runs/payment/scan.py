"""The chain is scanned before anything is sent (SPEC 10): the ledger may be wrong about the
world (restored from a backup, copied), the chain is not.

Before a run's first submission, and whenever a payer takes a run over, the outgoing history
of the payout and channel accounts, from the moment the period's inputs were complete (the
period's end), is matched against every transaction this ledger knows (any run, under every
hash) and the period's receipts:
- a transaction this ledger built is left to the landing rule;
- an unknown one whose payments are exactly pending payments of the run (per receipt: memo =
  receipt hash, destination and amount; batch: the memo root recomputed from the receipts that
  match destination and amount in operation order) is adopted: those payments are paid, the
  event names the chain transaction; a claimable balance it created for a pending payment
  (to the farmer and the payout account, in TFT, with the run's signed reclaim window) is
  adopted as `claimable` under the balance id the chain computed, never created again;
- a batch whose receipts cannot be told apart (too many receipts share its destinations and
  amounts to try every choice) stops the run, and so does an outgoing
  transaction that matches nothing (naming it) unless an operator accepted it
  (`payouts recover RUN --accept "who, why"`);
- a sweep (TFT payments from the payout account back to the treasury that funded a run, memo:
  that run's manifest hash) is left to the sweep step, which adopts it (runs/sweep.py);
- incoming payments (anyone can send dust with a receipt hash as memo) are ignored, with a
  warning.
The paging cursor per account is kept in the ledger, so later scans read only what is new; it
never moves past a transaction that stopped the run.
"""

from __future__ import annotations

import base64
import itertools
import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
import structlog
from sqlmodel import Session, col, select
from stellar_sdk import Claimant, CreateClaimableBalance, FeeBumpTransactionEnvelope, TransactionBuilder
from stellar_sdk.operation import Payment as PaymentOperation
from stellar_sdk.operation.create_claimable_balance import ClaimPredicateType

from payouts.ledger.events import record_event
from payouts.ledger.kinds import PaymentDelivery, TransactionPurpose
from payouts.ledger.models import ChainCursor, LedgerEvent, Payment, Run, StellarTransaction, TransactionHash
from payouts.ledger.outstanding import settled_by_retries
from payouts.ledger.repository import id_of
from payouts.ledger.states import PaymentStatus, TransactionStatus, transition, transition_many
from payouts.ledger.types import utcnow
from payouts.money import parse_tft
from payouts.runs.approvals import reclaim_after_s_of
from payouts.runs.errors import RunsError
from payouts.stellar.build import envelope_amount_text
from payouts.stellar.claimable import balance_id_of, created_in
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.merkle import merkle_root

log = structlog.get_logger(__name__)

#: the event that records an operator's acceptance of chain transactions the ledger lacks
ACCEPTED_EVENT = "chain.accepted"


#: how many ways to match a batch's operations to receipts the scan tries before it stops
MAX_CHOICES = 4096

#: operations that move no value out of an account: settings, trust, data entries, sequence
MOVES_NOTHING = frozenset(
    {
        "change_trust",
        "set_options",
        "manage_data",
        "bump_sequence",
        "allow_trust",
        "set_trust_line_flags",
        "begin_sponsoring_future_reserves",
        "end_sponsoring_future_reserves",
        # claiming a balance brings value in (the payout account taking an unclaimed one back)
        "claim_claimable_balance",
    }
)


@dataclass
class ScanResult:
    transactions_read: int = 0
    adopted_payments: int = 0
    adopted_transactions: list[str] = field(default_factory=list)
    #: outgoing transactions that match nothing (or cannot be told apart): each stops the run
    problems: list[str] = field(default_factory=list)
    unmatched_hashes: list[str] = field(default_factory=list)
    incoming_ignored: int = 0
    requests: int = 0
    seconds: float = 0.0


def known_hashes(session: Session) -> set[str]:
    """Every hash of every transaction this ledger built, any run, any purpose."""
    own = {
        h
        for pair in session.exec(select(StellarTransaction.tx_hash, StellarTransaction.fee_bump_hash))
        for h in pair
        if h
    }
    return own | set(session.exec(select(TransactionHash.tx_hash)).all())


def funded_by(session: Session) -> dict[str, str]:
    """The treasury that funded each run, by the run's manifest hash (the funding memo)."""
    return dict(
        session.exec(
            select(StellarTransaction.memo_hash, StellarTransaction.source_account).where(
                StellarTransaction.purpose == TransactionPurpose.FUNDING,
                StellarTransaction.status == TransactionStatus.CONFIRMED,
            )
        ).all()
    )


def _is_sweep(
    operations: list[dict], memo: str | None, payout_account: str, asset: tuple[str, str], funded: dict[str, str]
) -> bool:
    """Every operation pays TFT from the payout account to the treasury that funded the run
    whose manifest hash is the memo: a sweep, which only the payout key can send and which moves
    TFT to our own treasury."""
    treasury = funded.get(memo or "")
    return treasury is not None and all(
        op.get("type") == "payment"
        and op.get("from") == payout_account
        and op.get("to") == treasury
        and (op.get("asset_code"), op.get("asset_issuer")) == asset
        for op in operations
    )


def accepted_hashes(session: Session) -> set[str]:
    accepted: set[str] = set()
    for detail in session.exec(select(LedgerEvent.detail_json).where(LedgerEvent.event == ACCEPTED_EVENT)).all():
        accepted.update(orjson.loads(detail).get("tx_hashes", []))
    return accepted


@dataclass
class ChainHistory:
    """What Horizon showed of the accounts' history past their cursors, read while no unit of
    work is open; `scan_chain` then matches it in one."""

    cursors: dict[str, str | None]
    records: dict[str, list[dict]]
    #: a transaction's operations, for records that carry no envelope
    operations: dict[str, list[dict]]


def scan_order(payout_account: str, accounts: list[str]) -> list[str]:
    return [payout_account, *[a for a in accounts if a != payout_account]]


def chain_cursors(session: Session, accounts: list[str]) -> dict[str, str | None]:
    cursors: dict[str, str | None] = {}
    for account in accounts:
        stored = session.get(ChainCursor, account)
        cursors[account] = stored.cursor if stored is not None else None
    return cursors


def read_history(
    client: HorizonClient, cursors: dict[str, str | None], known: set[str], period_end_ts: int
) -> ChainHistory:
    """Read the history `scan_chain` matches (no ledger access): each account's transactions
    past its cursor, and the operations of those that may need matching and carry no envelope."""
    history = ChainHistory(cursors=dict(cursors), records={}, operations={})
    for account, cursor in cursors.items():
        records = list(client.transactions(account, cursor=cursor))
        history.records[account] = records
        for record in records:
            tx_hash = record["hash"]
            inner = (record.get("inner_transaction") or {}).get("hash")
            if (
                tx_hash in history.operations
                or not record.get("successful", True)
                or datetime.fromisoformat(record["created_at"]).timestamp() < period_end_ts
                or tx_hash in known
                or (inner is not None and inner in known)
                or _envelope_operations(record) is not None
            ):
                continue
            history.operations[tx_hash] = horizon_operations(client, record)
    return history


def scan_chain(
    session: Session,
    client: HorizonClient,
    run: Run,
    *,
    payout_account: str,
    accounts: list[str],
    asset_code: str,
    asset_issuer: str,
    history: ChainHistory | None = None,
) -> ScanResult:
    """Scan the accounts' history (incrementally) and adopt or flag what the ledger lacks.
    Writes through the caller's session; never commits. With `history` (read by
    `read_history` from the cursors as they still are), Horizon is not asked again."""
    started = time.monotonic()
    result = ScanResult()
    ours = set(accounts) | {payout_account}
    known = known_hashes(session)
    accepted = accepted_hashes(session)
    receipt_hashes = set(session.exec(select(Payment.receipt_hash).where(Payment.run_id == run.id)).all())
    seen: set[str] = set()
    pending = PendingIndex(session, run)
    funded = funded_by(session)
    for account in scan_order(payout_account, accounts):
        stored = session.get(ChainCursor, account)
        cursor = stored.cursor if stored is not None else None
        keep_cursor = cursor
        blocked = False
        read_here = 0
        if history is not None and history.cursors.get(account, cursor) != cursor:
            raise RunsError(f"the chain cursor of {account} moved while its history was read")
        records = history.records[account] if history is not None else client.transactions(account, cursor=cursor)
        for record in records:
            result.transactions_read += 1
            read_here += 1
            token = str(record["paging_token"])
            problem = _match(
                session,
                client,
                run,
                record,
                result,
                ours,
                known,
                accepted,
                receipt_hashes,
                seen,
                pending,
                payout_account,
                asset_code,
                asset_issuer,
                history,
                funded,
            )
            if problem:
                blocked = True
            if not blocked:
                keep_cursor = token
        result.requests += 1 + read_here // 200  # pages of 200
        if keep_cursor and keep_cursor != cursor:
            if stored is None:
                session.add(ChainCursor(account_id=account, cursor=keep_cursor, updated_at=utcnow()))
            else:
                stored.cursor, stored.updated_at = keep_cursor, utcnow()
                session.add(stored)
    session.flush()
    result.seconds = time.monotonic() - started
    log.info(
        "chain.scanned",
        run_id=run.id,
        transactions=result.transactions_read,
        adopted=result.adopted_payments,
        problems=len(result.problems),
        seconds=round(result.seconds, 3),
    )
    return result


def _match(
    session: Session,
    client: HorizonClient,
    run: Run,
    record: dict,
    result: ScanResult,
    ours: set[str],
    known: set[str],
    accepted: set[str],
    receipt_hashes: set[str],
    seen: set[str],
    pending: PendingIndex,
    payout_account: str,
    asset_code: str,
    asset_issuer: str,
    history: ChainHistory | None = None,
    funded: dict[str, str] | None = None,
) -> bool:
    """One chain transaction; True when it stops the run."""
    tx_hash = record["hash"]
    inner = (record.get("inner_transaction") or {}).get("hash")
    if tx_hash in seen:
        return tx_hash in result.unmatched_hashes
    seen.add(tx_hash)
    if not record.get("successful", True):
        return False  # pays nothing
    if datetime.fromisoformat(record["created_at"]).timestamp() < run.period_end_ts:
        return False  # before the period's inputs were complete: not this period's
    if tx_hash in known or (inner is not None and inner in known):
        return False  # ours: the landing rule resolves it
    memo = _memo_hex(record)
    outgoing = record.get("source_account") in ours or record.get("fee_account") in ours
    operations = _envelope_operations(record)
    if operations is None:  # no envelope in the record: ask Horizon for the operations
        read = history.operations.get(tx_hash) if history is not None else None
        operations = read if read is not None else horizon_operations(client, record)
        result.requests += 1
    ours_paying = [
        op
        for op in operations
        if (op.get("source_account") in ours or op.get("from") in ours) and op.get("type") not in MOVES_NOTHING
    ]
    if not ours_paying:
        # incoming, or our own account settings (a trustline, signers, the payer's claim)
        if not outgoing:
            result.incoming_ignored += 1
            if memo in receipt_hashes:
                log.warning("chain.incoming.receipt_memo", run_id=run.id, tx_hash=tx_hash, memo=memo)
        return False
    if tx_hash in accepted:
        return False
    if _is_sweep(ours_paying, memo, payout_account, (asset_code, asset_issuer), funded or {}):
        # a sweep a restored ledger lost: the run's sweep step adopts it, never sends it again
        log.warning("chain.sweep.left_to_sweep_step", run_id=run.id, tx_hash=tx_hash, memo=memo)
        return False
    window = reclaim_after_s_of(run.claimable_policy_json)
    payments: list[tuple[str, int]] = []
    balances: list[str | None] = []  # per operation: the balance id it created, if any
    for op in ours_paying:
        if op.get("asset_code") != asset_code or op.get("asset_issuer") != asset_issuer:
            continue
        if op.get("type") == "payment" and op.get("from") == payout_account:
            payments.append((op["to"], parse_tft(op["amount"])))
            balances.append(None)
        elif (
            op.get("type") == "create_claimable_balance"
            and op.get("source_account") == payout_account
            and op.get("balance_id")
            and window is not None
            and op.get("reclaim_after_s") == window
            and len(op.get("claimants", [])) == 2
            and op["claimants"][1] == payout_account
        ):
            payments.append((op["claimants"][0], parse_tft(op["amount"])))
            balances.append(op["balance_id"])
    if payments and len(payments) == len(ours_paying) and memo is not None:
        adopted, ambiguous = _adopt(session, run, pending, tx_hash, memo, payments, record, balances, window)
        if adopted:
            result.adopted_payments += adopted
            result.adopted_transactions.append(tx_hash)
            return False
        if ambiguous:
            result.problems.append(
                f"chain transaction {tx_hash} pays receipts of this run that cannot be told apart "
                "(same destination and amount); resolve it by hand"
            )
            result.unmatched_hashes.append(tx_hash)
            return True
    result.problems.append(
        f"chain transaction {tx_hash} from {record.get('source_account')} matches nothing this ledger knows "
        f'({len(ours_paying)} operation(s) from our accounts); `payouts recover {run.id} --accept "who, why"` '
        "once it is explained (a key rotation, a manual transfer)"
    )
    result.unmatched_hashes.append(tx_hash)
    return True


class PendingIndex:
    """The run's pending payments, read once per scan, by memo and by (destination, amount),
    in payment-id order (the order they are built in)."""

    def __init__(self, session: Session, run: Run) -> None:
        self.by_memo: dict[str, list[Payment]] = {}
        self.by_payment: dict[tuple[str, int], list[Payment]] = {}
        for payment in session.exec(
            select(Payment)
            .where(
                Payment.run_id == run.id, Payment.status == PaymentStatus.PENDING, col(Payment.in_manifest).is_(True)
            )
            .order_by(col(Payment.id))
        ).all():
            self.by_memo.setdefault(payment.receipt_hash, []).append(payment)
            self.by_payment.setdefault((payment.destination, payment.amount_tft_units), []).append(payment)

    def take(self, chosen: list[Payment]) -> None:
        for payment in chosen:
            self.by_memo[payment.receipt_hash].remove(payment)
            self.by_payment[(payment.destination, payment.amount_tft_units)].remove(payment)


def _adopt(
    session: Session,
    run: Run,
    pending: PendingIndex,
    tx_hash: str,
    memo: str,
    payments: Sequence[tuple[str, int]],
    record: dict,
    balances: Sequence[str | None] = (),
    window_s: int | None = None,
) -> tuple[int, bool]:
    """Adopt the run's pending payments this chain transaction paid; (adopted, ambiguous).
    `balances`: per operation, the claimable balance it created (None for a payment)."""
    chosen: list[Payment] = []
    ambiguous = False
    if len(payments) == 1:
        destination, amount = payments[0]
        match = [
            p for p in pending.by_memo.get(memo, []) if p.destination == destination and p.amount_tft_units == amount
        ]
        chosen = match[:1] if len(match) == 1 else []
    if not chosen:
        # batch: the receipts matching destination and amount in operation order, and the memo
        # root recomputed from them; where several receipts share a destination and amount,
        # every choice is tried (up to MAX_CHOICES): exactly one must give the memo root
        options = [pending.by_payment.get((destination, amount), []) for destination, amount in payments]
        if all(options):
            choices = math.prod(len(o) for o in options)
            if choices > MAX_CHOICES:
                return 0, True
            matches = {
                tuple(sorted(id_of(p) for p in combination)): list(combination)
                for combination in itertools.product(*options)
                if len({id_of(p) for p in combination}) == len(combination)
                and merkle_root([p.receipt_hash for p in combination]).hex() == memo
            }
            if len(matches) == 1:
                chosen = next(iter(matches.values()))
            ambiguous = len(matches) > 1
    if not chosen:
        return 0, ambiguous
    ledger = int(record["ledger"]) if record.get("ledger") is not None else None
    closed_at = datetime.fromisoformat(record["created_at"])
    # chosen[i] is what operation i paid
    by_balance = list(balances) or [None] * len(chosen)
    paid = [p for p, balance in zip(chosen, by_balance, strict=True) if balance is None]
    transition_many(
        session,
        Payment,
        [id_of(p) for p in paid],
        PaymentStatus.PENDING,
        PaymentStatus.PAID,
        event="payment.adopted",
        run_id=id_of(run),
        detail={"tx_hash": tx_hash, "ledger": ledger},
        tx_hash=tx_hash,
        ledger=ledger,
        paid_at=closed_at,
    )
    for payment, balance in zip(chosen, by_balance, strict=True):
        if balance is None:
            continue
        # paid out and waiting for the farmer, as if this ledger had sent it (resolve.py)
        transition(
            session,
            Payment,
            id_of(payment),
            PaymentStatus.PENDING,
            PaymentStatus.CLAIMABLE,
            event="payment.adopted",
            run_id=id_of(run),
            detail={"tx_hash": tx_hash, "ledger": ledger, "balance_id": balance},
            tx_hash=tx_hash,
            ledger=ledger,
            paid_at=closed_at,
            delivery=PaymentDelivery.CLAIMABLE_BALANCE,
            claimable_balance_id=balance,
            claimable_until=closed_at + timedelta(seconds=window_s or 0),
        )
    # an adopted retry settles its whole chain, as a retry paid by this ledger does (a claimable
    # one once its balance is claimed: runs/claimable.py)
    transition_many(
        session,
        Payment,
        settled_by_retries(session, [id_of(p) for p in paid]),
        PaymentStatus.HELD,
        PaymentStatus.RETRIED,
        event="payment.retried",
        run_id=id_of(run),
        detail={"tx_hash": tx_hash},
    )
    pending.take(chosen)
    log.warning("chain.adopted", run_id=run.id, tx_hash=tx_hash, payments=len(chosen))
    return len(chosen), False


def record_acceptance(session: Session, run: Run, tx_hashes: list[str], accepted_by: str) -> None:
    record_event(
        session,
        entity="runs",
        entity_id=id_of(run),
        run_id=id_of(run),
        event=ACCEPTED_EVENT,
        detail={"tx_hashes": sorted(tx_hashes), "accepted_by": accepted_by},
    )


def horizon_operations(client: HorizonClient, record: dict) -> list[dict]:
    """A transaction's operations as Horizon's operation records give them, for a record that
    carries no envelope, in the shape `_envelope_operations` reads from one. Horizon's record of
    a claimable balance's creation names no balance id: it is worked out as the chain makes it
    (the transaction's source and sequence, the operation's index) and kept only when Horizon
    lists the balance's creation in this transaction."""
    tx_hash = record["hash"]
    operations = client.transaction_operations(tx_hash)
    for position, op in enumerate(operations):
        if op.get("type") != "create_claimable_balance":
            continue
        asset = str(op.get("asset", ""))
        code, _, issuer = asset.partition(":")
        claimants = op.get("claimants") or []
        op["asset_code"], op["asset_issuer"] = (code, issuer) if issuer else (None, None)
        op["claimants"] = [c.get("destination") for c in claimants]
        op["reclaim_after_s"] = _horizon_reclaim_after_s([c.get("predicate") or {} for c in claimants])
        index = _operation_index(op, position)
        source, sequence = record.get("source_account"), record.get("source_account_sequence")
        if source and sequence is not None:
            balance_id = balance_id_of(str(source), int(sequence), index)
            if created_in(client, balance_id, tx_hash):
                op["balance_id"] = balance_id
    return operations


def _operation_index(op: dict, position: int) -> int:
    """The operation's index in its transaction: the low 12 bits of Horizon's operation id are
    the index from 1; where the id does not say, its place in the ordered list."""
    text = str(op.get("id") or op.get("paging_token") or "")
    return (int(text) & 0xFFF) - 1 if text.isdigit() and int(text) & 0xFFF else position


def _horizon_reclaim_after_s(predicates: list[dict]) -> int | None:
    """`_reclaim_after_s` for Horizon's JSON of the predicates as submitted."""
    if len(predicates) != 2 or predicates[0] != {"unconditional": True}:
        return None
    inner = predicates[1].get("not") if set(predicates[1]) == {"not"} else None
    if not isinstance(inner, dict) or set(inner) != {"rel_before"} or not str(inner["rel_before"]).isdigit():
        return None
    return int(inner["rel_before"])


def _envelope_operations(record: dict) -> list[dict] | None:
    """The transaction's operations read from its signed envelope (in the record already), in
    the shape of Horizon's operation records; None when the record carries no envelope."""
    envelope_xdr = record.get("envelope_xdr")
    if not envelope_xdr:
        return None
    try:
        # the passphrase only feeds the hash, which the record gives: any value reads the body
        envelope = TransactionBuilder.from_xdr(envelope_xdr, "scan")
    except Exception:  # noqa: BLE001 - an envelope the SDK cannot read: ask Horizon instead
        return None
    if isinstance(envelope, FeeBumpTransactionEnvelope):
        transaction = envelope.transaction.inner_transaction_envelope.transaction
    else:
        transaction = envelope.transaction
    tx_source = transaction.source.account_id
    operations: list[dict] = []
    for index, op in enumerate(transaction.operations):
        source = op.source.account_id if op.source is not None else tx_source
        document: dict[str, object] = {"type": _SNAKE.sub("_", type(op).__name__).lower(), "source_account": source}
        if isinstance(op, PaymentOperation):
            document |= {
                "from": source,
                "to": op.destination.account_id,
                "amount": envelope_amount_text(op.amount),
                "asset_code": op.asset.code,
                "asset_issuer": op.asset.issuer,
            }
        elif isinstance(op, CreateClaimableBalance):
            document |= {
                "amount": envelope_amount_text(op.amount),
                "asset_code": op.asset.code,
                "asset_issuer": op.asset.issuer,
                "claimants": [c.destination for c in op.claimants],
                "reclaim_after_s": _reclaim_after_s(op.claimants),
                # as the chain computes it (the transaction's source and sequence, the index)
                "balance_id": transaction.get_claimable_balance_id(index),
            }
        operations.append(document)
    return operations


_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def _reclaim_after_s(claimants: Sequence[Claimant]) -> int | None:
    """The window of a balance as we create it: the farmer unconditionally, the payout account
    not before a relative time; None for any other shape (never adopted)."""
    if len(claimants) != 2:
        return None
    farmer, reclaimer = claimants[0].predicate, claimants[1].predicate
    if farmer.claim_predicate_type != ClaimPredicateType.CLAIM_PREDICATE_UNCONDITIONAL:
        return None
    if reclaimer.claim_predicate_type != ClaimPredicateType.CLAIM_PREDICATE_NOT or reclaimer.not_predicate is None:
        return None
    inner = reclaimer.not_predicate
    if inner.claim_predicate_type != ClaimPredicateType.CLAIM_PREDICATE_BEFORE_RELATIVE_TIME:
        return None
    return inner.rel_before


def _memo_hex(record: dict) -> str | None:
    if record.get("memo_type") != "hash" or not record.get("memo"):
        return None
    return base64.b64decode(record["memo"]).hex()
