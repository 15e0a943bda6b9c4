"""Resolving outcomes: what the network said about each transaction, and what follows from it."""

from __future__ import annotations

import orjson
import structlog
from sqlalchemy import update
from sqlmodel import Session, col, select

from payouts.ledger.models import Payment, StellarTransaction
from payouts.ledger.repository import id_of
from payouts.ledger.states import (
    PAYMENT_TRANSITIONS,
    TRANSACTION_TRANSITIONS,
    PaymentStatus,
    TransactionStatus,
    transition,
    transition_many,
)
from payouts.ledger.types import utcnow
from payouts.runs.payment.common import EngineState, PayReport
from payouts.runs.service import require_run
from payouts.stellar.horizon import DESTINATION_CODES, CodeBucket, Outcome, SubmitResult, classify
from payouts.stellar.submit import Verdict, landing_verdict

log = structlog.get_logger(__name__)


class Resolver(EngineState):
    def _bump_fee(self, session: Session, tx: StellarTransaction) -> str | None:
        raise NotImplementedError

    def resolve(self, run_id: int, tx_id: int, result: SubmitResult, report: PayReport) -> Verdict:
        return self.resolve_many(run_id, [(tx_id, result)], report)[tx_id][0]

    def resolve_many(
        self, run_id: int, answers: list[tuple[int, SubmitResult]], report: PayReport
    ) -> dict[int, tuple[Verdict, str]]:
        """Record what the network said about each transaction, in one commit.

        Returns per transaction its verdict and, for MAYBE, the envelope to send again: the
        identical bytes, or a fee bump of them when a congested network asked for a higher fee.
        """
        verdicts: dict[int, tuple[Verdict, str]] = {}
        with self.units() as uow:
            session = uow.session
            for tx_id, result in answers:
                tx = session.get(StellarTransaction, tx_id)
                if tx is None or not TransactionStatus(tx.status).is_live:
                    verdicts[tx_id] = (Verdict.LANDED, "")  # resolved already (a doubled call)
                    continue
                verdicts[tx_id] = self._resolve_one(session, run_id, tx, result, report)
        return verdicts

    def _resolve_one(
        self, session: Session, run_id: int, tx: StellarTransaction, result: SubmitResult, report: PayReport
    ) -> tuple[Verdict, str]:
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
        info = self.client.transaction(tx.tx_hash)
        verdict = Verdict.MAYBE
        if info is None:
            latest = self.client.latest_ledger()
            source = self.client.account(tx.source_account)
            verdict = landing_verdict(
                found=False,
                successful=None,
                latest_closed_ts=int(latest.closed_at.timestamp()),
                max_time_ts=tx.max_time,
                source_sequence_now=source.sequence if source else None,
                tx_sequence=tx.sequence,
            )
            if verdict is Verdict.NEVER:
                # The proof holds only for a lookup made after it: the transaction may have
                # landed between the first lookup and these reads, using up its own sequence
                # number. Not found now, it never will be.
                info = self.client.transaction(tx.tx_hash)
        if info is not None:
            verdict = Verdict.LANDED if info.successful else Verdict.FAILED
            if verdict is Verdict.LANDED:
                self._confirm(session, tx, info.ledger, info.closed_at, report, landed_hash=info.tx_hash)
                return verdict, ""
        if verdict is Verdict.FAILED:
            self._failed_on_chain(session, tx, codes, report)
        elif verdict is Verdict.NEVER:
            self._next_sequence.pop(tx.source_account, None)  # reload: the number may be unused
            self._dead(session, tx, codes, report)
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
            transitions=TRANSACTION_TRANSITIONS,
            event="transaction.confirmed",
            run_id=tx.run_id,
            detail={"ledger": ledger, "landed_hash": landed_hash},
            ledger=ledger,
            closed_at=closed_at,
            **bump,
        )
        ids = [
            id_of(p)
            for p in session.exec(
                select(Payment).where(Payment.transaction_id == tx.id, Payment.status == PaymentStatus.SUBMITTED)
            ).all()
        ]
        transition_many(
            session,
            Payment,
            ids,
            PaymentStatus.SUBMITTED,
            PaymentStatus.PAID,
            transitions=PAYMENT_TRANSITIONS,
            event="payment.paid",
            run_id=tx.run_id,
            detail={"tx_hash": landed_hash},
            tx_hash=landed_hash,
            ledger=ledger,
            paid_at=closed_at,
        )
        # a paid retry settles the held payment it retries
        originals = [
            p.retry_of_payment_id
            for p in session.exec(
                select(Payment).where(col(Payment.id).in_(ids), col(Payment.retry_of_payment_id).is_not(None))
            ).all()
            if p.retry_of_payment_id is not None
        ]
        transition_many(
            session,
            Payment,
            originals,
            PaymentStatus.HELD,
            PaymentStatus.RETRIED,
            transitions=PAYMENT_TRANSITIONS,
            event="payment.retried",
            run_id=tx.run_id,
            detail={"tx_hash": tx.tx_hash},
        )
        report.paid += len(ids)
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
                transitions=PAYMENT_TRANSITIONS,
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
            transitions=PAYMENT_TRANSITIONS,
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
            transitions=TRANSACTION_TRANSITIONS,
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
            transitions=TRANSACTION_TRANSITIONS,
            event="transaction.dead",
            run_id=tx.run_id,
            detail={"result_codes": codes},
        )
        if codes.get("transaction") == "tx_insufficient_fee":
            raised = min(self._fee_per_op * 2, self.config.max_fee_stroops)
            log.info("payment.fee.raised", run_id=tx.run_id, fee_per_op_stroops=raised)
            self._fee_per_op = raised
        self._release(session, tx, {}, report)
