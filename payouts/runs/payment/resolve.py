"""Resolving outcomes: what the network said about each transaction, and what follows from it."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import orjson
import structlog
from sqlalchemy import update
from sqlmodel import Session, col, select

from payouts.ledger.events import record_event
from payouts.ledger.kinds import HashKind, PaymentDelivery
from payouts.ledger.models import Payment, StellarTransaction, TransactionHash
from payouts.ledger.outstanding import settled_by_retries
from payouts.ledger.repository import id_of
from payouts.ledger.states import (
    PaymentStatus,
    TransactionStatus,
    transition,
    transition_many,
)
from payouts.ledger.types import utcnow
from payouts.ledger.unit_of_work import UnitOfWorkFactory
from payouts.runs.approvals import reclaim_after_s_of
from payouts.runs.payment.common import EngineState, PayReport
from payouts.runs.progress import UNKNOWN_OUTCOME_EVENT
from payouts.runs.service import require_run
from payouts.stellar.horizon import (
    DESTINATION_CODES,
    CodeBucket,
    HorizonClient,
    Outcome,
    SubmitResult,
    TransactionInfo,
    classify,
)
from payouts.stellar.submit import Verdict, landing_verdict

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ChainAnswer:
    """What the chain says about one of our transactions, and the proof behind it."""

    verdict: Verdict
    info: TransactionInfo | None = None
    #: why it waits (MAYBE with a reason to tell) or why the run must stop (FOREIGN)
    reason: str = ""


def own_hashes(session: Session, tx: StellarTransaction) -> list[str]:
    """Every hash the transaction has had: its own first, then each fee bump (oldest first)."""
    recorded = session.exec(
        select(TransactionHash.tx_hash)
        .where(TransactionHash.transaction_id == tx.id, TransactionHash.kind == HashKind.FEE_BUMP)
        .order_by(col(TransactionHash.created_at), col(TransactionHash.tx_hash))
    ).all()
    hashes = [tx.tx_hash, *recorded]
    if tx.fee_bump_hash and tx.fee_bump_hash not in hashes:
        hashes.append(tx.fee_bump_hash)
    return hashes


def is_ours(info: TransactionInfo, hashes: Collection[str]) -> bool:
    """A chain transaction is ours when its hash, or its inner transaction's hash, is ours."""
    return info.tx_hash in hashes or (info.inner_hash is not None and info.inner_hash in hashes)


def chain_outcome(session: Session, client: HorizonClient, tx: StellarTransaction) -> ChainAnswer:
    """Look the transaction up under every hash it has; give it up only on proof (submit.py).

    Shared by payments and funding. Each "not found" counts as of the `Latest-Ledger` of the
    Horizon that answered it; the history check and the source account are read only when the
    lookups are past the transaction's ledger bound."""
    return chain_answer(client, tx, own_hashes(session, tx), lambda: _sequence_landed_for_us(session, tx))


def chain_answer(
    client: HorizonClient, tx: StellarTransaction, hashes: list[str], sequence_used_by_us: Callable[[], bool]
) -> ChainAnswer:
    """`chain_outcome` from what the ledger said beforehand: the transaction's hashes, and a
    question asked of the ledger only when the answer depends on it. A caller that holds no
    unit of work while Horizon answers reads `hashes` in one unit and the question in another."""
    seen: list[int | None] = []
    for tx_hash in hashes:
        lookup = client.lookup(tx_hash)
        if lookup.info is not None and is_ours(lookup.info, hashes):
            return ChainAnswer(Verdict.LANDED if lookup.info.successful else Verdict.FAILED, lookup.info)
        seen.append(lookup.latest_ledger)
    latest = None if any(ledger is None for ledger in seen) else min(ledger for ledger in seen if ledger is not None)
    max_ledger, built_ledger = tx.max_ledger, tx.built_ledger
    if max_ledger is None:
        max_ledger, built_ledger = _unbounded_proof(client, tx, latest)
    elder: int | None = None
    source_sequence: int | None = None
    used_by_us = False
    if latest is not None and max_ledger is not None and latest >= max_ledger:
        elder = client.history_elder_ledger()
        if elder is not None and built_ledger is not None and elder <= built_ledger:
            source = client.account(tx.source_account)
            source_sequence = source.sequence if source is not None else None
            used_by_us = sequence_used_by_us()
    verdict = landing_verdict(
        found=False,
        successful=None,
        latest_ledger=latest,
        max_ledger=max_ledger,
        built_ledger=built_ledger,
        elder_ledger=elder,
        source_sequence_now=source_sequence,
        tx_sequence=tx.sequence,
        sequence_used_by_us=used_by_us,
    )
    reason = ""
    if verdict is Verdict.FOREIGN:
        reason = (
            f"sequence {tx.sequence} of {tx.source_account} was used by a transaction this ledger did not "
            f"build (its own transaction {tx.tx_hash[:12]} did not land): another payer may be paying from "
            "this account; find who before continuing"
        )
    elif verdict is Verdict.MAYBE and latest is None:
        reason = "Horizon answered without a Latest-Ledger header: waiting for a lookup that says as of which ledger"
    elif verdict is Verdict.MAYBE and elder is not None and built_ledger is not None and elder > built_ledger:
        reason = (
            f"Horizon's history starts at ledger {elder}, after the transaction was built (ledger "
            f"{built_ledger}): waiting for a Horizon whose history covers it"
        )
    return ChainAnswer(verdict, None, reason)


def _unbounded_proof(
    client: HorizonClient, tx: StellarTransaction, latest: int | None
) -> tuple[int | None, int | None]:
    """A transaction built before ledger bounds (time bounds only): the ledger Horizon had seen
    counts as its bound once that ledger closed past the max time, and the history counts from
    the oldest ledger Horizon keeps once that closed before the transaction was built."""
    if latest is None:
        return None, None
    seen = client.ledger(latest)
    if seen is None or int(seen.closed_at.timestamp()) <= tx.max_time:
        return None, None
    elder = client.history_elder_ledger()
    oldest = client.ledger(elder) if elder is not None else None
    if oldest is None or oldest.closed_at > tx.created_at:
        return latest, None
    return latest, oldest.sequence


def _sequence_landed_for_us(session: Session, tx: StellarTransaction) -> bool:
    """Did another transaction this ledger built land with the same source and sequence?"""
    other = session.exec(
        select(StellarTransaction.id).where(
            StellarTransaction.source_account == tx.source_account,
            StellarTransaction.sequence == tx.sequence,
            col(StellarTransaction.id) != tx.id,
            col(StellarTransaction.status).in_([TransactionStatus.CONFIRMED, TransactionStatus.FAILED]),
        )
    ).first()
    return other is not None


def sequence_landed_for_us_in(units: UnitOfWorkFactory, tx: StellarTransaction) -> bool:
    """`_sequence_landed_for_us` in a unit of work of its own (a caller holding none)."""
    with units() as uow:
        return _sequence_landed_for_us(uow.session, tx)


class Resolver(EngineState):
    def _bump_fee(self, session: Session, tx: StellarTransaction) -> str | None:
        raise NotImplementedError

    def resolve_many(
        self, run_id: int, answers: list[tuple[int, SubmitResult]], report: PayReport
    ) -> dict[int, tuple[Verdict, str]]:
        """Record what the network said about each transaction, in one commit.

        Returns per transaction its verdict and, for MAYBE, the envelope to send again: the
        identical bytes, or a fee bump of them when a congested network asked for a higher fee.
        """
        verdicts: dict[int, tuple[Verdict, str]] = {}
        #: per transaction that needs a lookup by hash: the row as read, its hashes, its codes
        lookups: dict[int, tuple[StellarTransaction, list[str], dict]] = {}
        with self.units() as uow:
            session = uow.session
            for tx_id, result in answers:
                tx = session.get(StellarTransaction, tx_id)
                if tx is None or not TransactionStatus(tx.status).is_live:
                    verdicts[tx_id] = (Verdict.LANDED, "")  # resolved already (a doubled call)
                    continue
                decided = self._record_answer(session, run_id, tx, result, report)
                if decided is None:
                    lookups[tx_id] = (tx, own_hashes(session, tx), result.result_codes)
                else:
                    verdicts[tx_id] = decided
        if not lookups:
            return verdicts
        # the lookups by hash wait on Horizon: no unit of work is open meanwhile
        found = {
            tx_id: chain_answer(self.client, tx, hashes, partial(sequence_landed_for_us_in, self.units, tx))
            for tx_id, (tx, hashes, _codes) in lookups.items()
        }
        with self.units() as uow:
            session = uow.session
            for tx_id, (seen, _hashes, codes) in lookups.items():
                tx = session.get(StellarTransaction, tx_id)
                if tx is None or tx.status != seen.status:
                    verdicts[tx_id] = (Verdict.LANDED, "")  # resolved meanwhile (a doubled call)
                    continue
                verdicts[tx_id] = self._apply_answer(session, run_id, tx, found[tx_id], codes, report)
        return verdicts

    def _record_answer(
        self, session: Session, run_id: int, tx: StellarTransaction, result: SubmitResult, report: PayReport
    ) -> tuple[Verdict, str] | None:
        """Record the submission's answer; the verdict when it decides one, None when the
        chain must be asked (outside this unit of work, then `_apply_answer`)."""
        codes = result.result_codes
        session.execute(
            update(StellarTransaction)
            .where(col(StellarTransaction.id) == tx.id)
            .values(
                attempts=tx.attempts + 1,
                updated_at=utcnow(),
                result_json=orjson.dumps(codes or {"outcome": result.outcome, "reason": result.reason}).decode(),
            )
            .execution_options(synchronize_session=False)
        )
        if result.outcome == Outcome.SUCCESS:
            self._confirm(session, tx, result.ledger, result.closed_at, report, landed_hash=result.tx_hash)
            return Verdict.LANDED, ""
        if result.outcome == Outcome.UNKNOWN:
            report.unknown_outcomes += 1
            # on record, so a resumed `pay` can say how many the whole run resolved
            record_event(
                session,
                entity="stellar_transactions",
                entity_id=tx.id,
                run_id=run_id,
                event=UNKNOWN_OUTCOME_EVENT,
                detail={"reason": result.reason[:200]},
            )
            log.warning("payment.submit.unknown_outcome", run_id=run_id, tx_hash=tx.tx_hash, reason=result.reason)
        if codes.get("transaction") == "tx_bad_seq":
            self._next_sequence.pop(tx.source_account, None)
        if result.outcome == Outcome.FAILED and classify(codes) == CodeBucket.RUN:
            self._stop(session, require_run(session, run_id), f"transaction {tx.tx_hash[:12]} refused: {codes}")
            return Verdict.MAYBE, tx.envelope_xdr
        # refused, not queued: the same transaction with a higher bid cannot double-land
        if (
            result.outcome == Outcome.FAILED
            and codes.get("transaction") == "tx_insufficient_fee"
            and (bumped := self._bump_fee(session, tx)) is not None
        ):
            return Verdict.MAYBE, bumped
        return None

    def _apply_answer(
        self, session: Session, run_id: int, tx: StellarTransaction, answer: ChainAnswer, codes: dict, report: PayReport
    ) -> tuple[Verdict, str]:
        """What the chain said about `tx` (re-read in this unit of work, still as it was)."""
        verdict, info = answer.verdict, answer.info
        if verdict is Verdict.LANDED and info is not None:
            self._confirm(session, tx, info.ledger, info.closed_at, report, landed_hash=info.tx_hash)
            return verdict, ""
        if verdict is Verdict.FAILED:
            self._failed_on_chain(session, tx, codes, report)
        elif verdict is Verdict.NEVER:
            self._next_sequence.pop(tx.source_account, None)  # reload: the number may be unused
            self._dead(session, tx, codes, report)
        elif verdict is Verdict.FOREIGN:
            self._stop(session, require_run(session, run_id), answer.reason)
            return Verdict.MAYBE, tx.envelope_xdr
        elif answer.reason:
            log.warning("payment.wait", run_id=run_id, tx_hash=tx.tx_hash, reason=answer.reason)
        return verdict, tx.envelope_xdr

    def _confirm(
        self,
        session: Session,
        tx: StellarTransaction,
        ledger,
        closed_at,
        report: PayReport,
        landed_hash: str | None = None,
    ) -> None:
        """Mark the transaction and its payments paid. `landed_hash` is the hash on chain: the
        transaction's own, or that of the fee bump around it (what explorers and farmers see)."""
        landed_hash = landed_hash or tx.tx_hash
        # a fee bump that lost to the transaction it wrapped is only history (its event keeps it)
        bump = {"fee_bump_hash": landed_hash if landed_hash != tx.tx_hash else None}
        transition(
            session,
            StellarTransaction,
            id_of(tx),
            TransactionStatus(tx.status),
            TransactionStatus.CONFIRMED,
            event="transaction.confirmed",
            run_id=tx.run_id,
            detail={"ledger": ledger, "landed_hash": landed_hash},
            ledger=ledger,
            closed_at=closed_at,
            **bump,
        )
        landed = session.exec(
            select(Payment).where(Payment.transaction_id == tx.id, Payment.status == PaymentStatus.SUBMITTED)
        ).all()
        ids = [id_of(p) for p in landed if p.delivery != PaymentDelivery.CLAIMABLE_BALANCE]
        balances = [id_of(p) for p in landed if p.delivery == PaymentDelivery.CLAIMABLE_BALANCE]
        if balances:
            # paid out, waiting for the farmer to claim: settled when claimed (runs/claimable.py)
            window = reclaim_after_s_of(require_run(session, tx.run_id).claimable_policy_json) or 0
            transition_many(
                session,
                Payment,
                balances,
                PaymentStatus.SUBMITTED,
                PaymentStatus.CLAIMABLE,
                event="payment.claimable",
                run_id=tx.run_id,
                detail={"tx_hash": landed_hash, "reclaim_after_s": window},
                tx_hash=landed_hash,
                ledger=ledger,
                paid_at=closed_at,
                claimable_until=closed_at + timedelta(seconds=window) if closed_at is not None else None,
            )
        transition_many(
            session,
            Payment,
            ids,
            PaymentStatus.SUBMITTED,
            PaymentStatus.PAID,
            event="payment.paid",
            run_id=tx.run_id,
            detail={"tx_hash": landed_hash},
            tx_hash=landed_hash,
            ledger=ledger,
            paid_at=closed_at,
        )
        # a paid retry settles its whole chain: the payment it retries and every one before it
        originals = settled_by_retries(session, ids)
        transition_many(
            session,
            Payment,
            originals,
            PaymentStatus.HELD,
            PaymentStatus.RETRIED,
            event="payment.retried",
            run_id=tx.run_id,
            detail={"tx_hash": tx.tx_hash},
        )
        report.paid += len(ids)
        report.claimable += len(balances)
        report.transactions += 1
        if ledger is not None:
            report.ledgers.add(ledger)

    def _release(self, session: Session, tx: StellarTransaction, codes: dict, report: PayReport) -> None:
        """The transaction will never pay: hold refused destinations, free the rest to rebuild."""
        payments = list(
            session.exec(
                select(Payment)
                .where(Payment.transaction_id == tx.id, Payment.status == PaymentStatus.SUBMITTED)
                .order_by(col(Payment.id))
            ).all()
        )
        op_codes = list(codes.get("operations") or [])
        refused: dict[str, list[int]] = {}
        free: list[int] = []
        for index, payment in enumerate(payments):
            code = op_codes[index] if index < len(op_codes) else None
            if code in DESTINATION_CODES:
                refused.setdefault(code.removeprefix("op_"), []).append(id_of(payment))
            else:
                free.append(id_of(payment))
        for reason, ids in refused.items():
            transition_many(
                session,
                Payment,
                ids,
                PaymentStatus.SUBMITTED,
                PaymentStatus.HELD,
                event="payment.held.refused",
                run_id=tx.run_id,
                detail={"tx_hash": tx.tx_hash, "reason": reason},
                hold_reason=reason,
                transaction_id=None,
            )
            report.held += len(ids)
        transition_many(
            session,
            Payment,
            free,
            PaymentStatus.SUBMITTED,
            PaymentStatus.PENDING,
            event="payment.rebuild",
            run_id=tx.run_id,
            detail={"tx_hash": tx.tx_hash},
            transaction_id=None,
        )
        report.rebuilt += 1

    def _failed_on_chain(self, session: Session, tx: StellarTransaction, codes: dict, report: PayReport) -> None:
        transition(
            session,
            StellarTransaction,
            id_of(tx),
            TransactionStatus(tx.status),
            TransactionStatus.FAILED,
            event="transaction.failed",
            run_id=tx.run_id,
            detail={"result_codes": codes},
        )
        if classify(codes) == CodeBucket.RUN:
            self._stop(session, require_run(session, tx.run_id), f"transaction {tx.tx_hash[:12]} failed: {codes}")
        self._release(session, tx, codes, report)

    def _dead(self, session: Session, tx: StellarTransaction, codes: dict, report: PayReport) -> None:
        transition(
            session,
            StellarTransaction,
            id_of(tx),
            TransactionStatus(tx.status),
            TransactionStatus.DEAD,
            event="transaction.dead",
            run_id=tx.run_id,
            detail={"result_codes": codes},
        )
        if codes.get("transaction") == "tx_insufficient_fee":
            raised = min(self._fee_per_op * 2, self.config.max_fee_stroops)
            log.info("payment.fee.raised", run_id=tx.run_id, fee_per_op_stroops=raised)
            self._fee_per_op = raised
        self._release(session, tx, {}, report)
