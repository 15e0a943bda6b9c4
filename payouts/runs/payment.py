"""Paying an approved run: every payable receipt once, whatever fails in between (SPEC 5).

The engine takes a unit-of-work factory: each step is its own unit of work, committed before the
next one starts, so a crash at any line leaves the ledger in a state the next call resumes from:
1. start: the approvals are checked again, every payment is checked against its hashed receipt,
   the payout account must cover the run (else the run stops before anything is sent), and
   destinations that cannot receive are held with their reason;
2. build: pending payments go into signed transactions, one live transaction per channel; the
   envelope, its hash, sequence and bounds are committed before the first submission (the
   named step `commit_before_submit`);
3. submit and resolve: the identical bytes are (re)submitted; a timeout or dropped connection is
   an unknown outcome, looked up by hash; payments are rebuilt only when their transaction
   provably can never land; per-operation refusals hold those destinations and free the rest.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Literal

import orjson
import structlog
from sqlalchemy import update
from sqlmodel import Session, col, select

from payouts.ledger.errors import AlreadyDone
from payouts.ledger.events import record_event
from payouts.ledger.models import Payment, Receipt, Run, StellarTransaction
from payouts.ledger.repository import id_of
from payouts.ledger.states import (
    PAYMENT_TRANSITIONS,
    RUN_TRANSITIONS,
    TRANSACTION_TRANSITIONS,
    PaymentStatus,
    RunStatus,
    TransactionStatus,
    transition,
    transition_many,
)
from payouts.ledger.types import utcnow
from payouts.ledger.unit_of_work import UnitOfWorkFactory
from payouts.runs.approvals import require_approved
from payouts.runs.control import acquire_lease, pause_state, release_lease
from payouts.runs.errors import RunsError
from payouts.runs.retries import retry_receipt_matches
from payouts.runs.service import require_run
from payouts.stellar.build import (
    MAX_OPERATIONS,
    PaymentOp,
    build_fee_bump_envelope,
    build_payment_envelope,
    fee_bid_per_operation,
    inner_envelope_xdr,
)
from payouts.stellar.horizon import DESTINATION_CODES, CodeBucket, HorizonClient, Outcome, SubmitResult, classify
from payouts.stellar.keys import SigningKeys
from payouts.stellar.merkle import merkle_root
from payouts.stellar.preflight import Asset, PreflightError, check_destinations, check_payout_account
from payouts.stellar.submit import Verdict, landing_verdict

log = structlog.get_logger(__name__)


class RunAlreadyPaid(AlreadyDone):
    pass


class RunNotPayable(RunsError):
    pass


class RunBusy(RunsError):
    """Another worker holds the run's lease and is paying it."""


class RunStopped(RunsError):
    """The run stopped and waits for an operator; the reason says why."""


@dataclass(frozen=True)
class PayConfig:
    network_passphrase: str
    asset_code: str
    asset_issuer: str
    approvers: tuple[str, ...]
    approvals_required: int
    memo_mode: Literal["per_receipt", "batch"] = "per_receipt"
    batch_size: int = MAX_OPERATIONS
    base_fee_stroops: int = 100  # per operation
    max_fee_stroops: int = 10_000  # per operation: congestion raises the bid up to here
    tx_timeout_s: int = 300
    poll_interval_s: float = 0.5
    #: a multisig treasury funds the hot payout account per run before anything is paid
    two_tier: bool = False
    #: seconds a payer's hold on a run lasts without renewal (renewed while it works)
    lease_ttl_s: float = 60.0


@dataclass
class PayReport:
    run_id: int
    status: str
    paid: int = 0
    held: int = 0
    transactions: int = 0
    rebuilt: int = 0
    unknown_outcomes: int = 0
    ledgers: set[int] = field(default_factory=set)
    reason: str = ""


class PaymentEngine:
    def __init__(self, units: UnitOfWorkFactory, client: HorizonClient, keys: SigningKeys, config: PayConfig) -> None:
        self.units = units
        self.client = client
        self.keys = keys
        self.config = config
        self.asset = Asset(config.asset_code, config.asset_issuer)
        self._fee_per_op = config.base_fee_stroops
        #: next sequence number per source, known from our own confirmed transactions
        self._next_sequence: dict[str, int] = {}
        self._clock: tuple[int, float] | None = None

    # -- 1. start ----------------------------------------------------------------------------

    def start(self, run_id: int) -> None:
        """Check the run and take it to `paying`. A run that must stop is stopped on record
        first (that unit of work commits), then RunStopped is raised."""
        with self.units() as uow:
            stopped = self._start(uow.session, run_id)
        if stopped is not None:
            raise RunStopped(f"run {run_id} stopped: {stopped}")

    def _start(self, session: Session, run_id: int) -> str | None:
        """Returns why the run stopped, or None when it is paying."""
        run = require_run(session, run_id)
        status = RunStatus(run.status)
        if status in (RunStatus.PAID, RunStatus.RECONCILED, RunStatus.EXPORTED):
            raise RunAlreadyPaid(f"run {run_id} is already {status}")
        if status is RunStatus.STOPPED:
            raise RunNotPayable(
                f"run {run_id} is stopped: {run.status_reason}; an operator continues it "
                f"with `payouts continue {run_id}` once the cause is fixed"
            )
        if status not in (RunStatus.APPROVED, RunStatus.FUNDED, RunStatus.PAYING):
            raise RunNotPayable(f"run {run_id} is {status}; only an approved run can be paid")
        if status is RunStatus.APPROVED and self.config.two_tier:
            raise RunNotPayable(
                f"run {run_id} is approved but not funded: export, sign and submit its funding "
                "transaction first (payouts funding export)"
            )
        require_approved(session, run, approvers=list(self.config.approvers), required=self.config.approvals_required)
        mismatch = self._check_payments_against_receipts(session, run)
        if mismatch is not None:
            return mismatch
        if status is RunStatus.PAYING:
            return None
        pending = self._payments(session, run_id, PaymentStatus.PENDING)
        in_flight = self._payments(session, run_id, PaymentStatus.SUBMITTED)
        total_units = sum(p.amount_tft_units for p in pending + in_flight)
        fee_budget = 0 if self.keys.channel_accounts else len(pending) * self.config.max_fee_stroops
        try:
            check_payout_account(
                self.client,
                self.keys.payout_account,
                self.asset,
                total_units=total_units,
                fee_budget_stroops=fee_budget,
            )
        except PreflightError as exc:
            self._stop(session, run, f"preflight: {exc}")
            return str(exc)
        held = check_destinations(self.client, self.asset, [(p.destination, p.amount_tft_units) for p in pending])
        for reason in sorted(set(held.values())):
            ids = [id_of(p) for p in pending if held.get(p.destination) == reason]
            transition_many(
                session,
                Payment,
                ids,
                PaymentStatus.PENDING,
                PaymentStatus.HELD,
                transitions=PAYMENT_TRANSITIONS,
                event="payment.held.preflight",
                run_id=run_id,
                detail={"reason": reason},
                hold_reason=reason,
            )
        transition(
            session,
            Run,
            run_id,
            status,
            RunStatus.PAYING,
            transitions=RUN_TRANSITIONS,
            event="run.paying",
            detail={"held_at_preflight": len(held)},
            status_reason="",
        )
        log.info("run.paying", run_id=run.id, pending=len(pending), held_destinations=len(held))
        return None

    def _check_payments_against_receipts(self, session: Session, run: Run) -> str | None:
        """Before signing: each payment must be what its hashed receipt says (an edited
        ledger row cannot redirect or resize a payment). A mismatch stops the run; returns
        its reason."""
        rows = session.exec(
            select(Payment, Receipt)
            .join(Receipt, col(Payment.receipt_id) == col(Receipt.id))
            .where(Payment.run_id == run.id, col(Payment.in_manifest).is_(True))
        ).all()
        own_receipts = session.exec(
            select(Payment).where(
                Payment.run_id == run.id,
                col(Payment.kind).in_(["retry", "correction"]),
                col(Payment.in_manifest).is_(True),
            )
        ).all()
        for payment in own_receipts:
            problems = retry_receipt_matches(payment)
            if problems:
                reason = f"payment {payment.id} ({payment.kind}): {'; '.join(problems)}"
                self._stop(session, run, reason)
                return reason
        for payment, receipt in rows:
            if payment.kind != "receipt":
                continue
            problems = []
            if hashlib.blake2b(receipt.receipt_bytes, digest_size=32).hexdigest() != receipt.receipt_hash:
                problems.append("receipt bytes do not match their hash")
            if payment.receipt_hash != receipt.receipt_hash:
                problems.append("payment memo differs from the receipt hash")
            if payment.amount_tft_units != receipt.reward_tft_units:
                problems.append("amount differs from the receipt")
            if payment.destination != receipt.stellar_payout_address:
                problems.append("destination differs from the receipt")
            if problems:
                reason = f"payment {payment.id} (node {payment.node_id}): {'; '.join(problems)}"
                self._stop(session, run, reason)
                return reason
        return None

    # -- 2. build ----------------------------------------------------------------------------

    def _payments(
        self, session: Session, run_id: int, status: PaymentStatus, limit: int | None = None
    ) -> list[Payment]:
        # only what the approvers signed: an entry recorded after the manifest (a correction)
        # waits for the next run's approvals
        statement = (
            select(Payment)
            .where(Payment.run_id == run_id, Payment.status == status, col(Payment.in_manifest).is_(True))
            .order_by(col(Payment.id))
        )
        if limit is not None:
            statement = statement.limit(limit)
        return list(session.exec(statement).all())

    def _live(self, session: Session, run_id: int) -> list[StellarTransaction]:
        statement = (
            select(StellarTransaction)
            .where(
                StellarTransaction.run_id == run_id,
                StellarTransaction.purpose == "payment",
                col(StellarTransaction.status).in_([TransactionStatus.BUILT, TransactionStatus.SUBMITTED]),
            )
            .order_by(col(StellarTransaction.id))
        )
        return list(session.exec(statement).all())

    def _sources(self) -> list[str]:
        return self.keys.channel_accounts or [self.keys.payout_account]

    def build(self, run_id: int, source: str) -> StellarTransaction | None:
        """Put the next pending payments into a signed transaction from `source` (which holds
        no live transaction), committed before anything is sent; None when nothing is pending."""
        built = self.build_many(run_id, [source])
        return built[0] if built else None

    def build_many(self, run_id: int, sources: list[str]) -> list[StellarTransaction]:
        """One transaction per free source, as far as pending payments go, in one commit.

        The envelopes, hashes, sequences and bounds are committed (as `submitted`: from here on
        they may be on the wire) before the caller sends them. One commit for all the channels a
        ledger close freed keeps them all in time for the next ledger.
        """
        per_tx = 1 if self.config.memo_mode == "per_receipt" else self.config.batch_size
        built: list[StellarTransaction] = []
        with self.units() as uow:
            session = uow.session
            pending = self._payments(session, run_id, PaymentStatus.PENDING, limit=per_tx * len(sources))
            groups = [pending[i : i + per_tx] for i in range(0, len(pending), per_tx)]
            for source, group in zip(sources, groups, strict=False):
                built.append(self._build_one(session, run_id, source, group))
            session.flush()
            for tx in built:
                transition(
                    session,
                    StellarTransaction,
                    id_of(tx),
                    TransactionStatus.BUILT,
                    TransactionStatus.SUBMITTED,
                    transitions=TRANSACTION_TRANSITIONS,
                    event="transaction.submitted",
                    run_id=run_id,
                )
            uow.commit_before_submit()
        for tx in built:
            self._next_sequence[tx.source_account] = tx.sequence + 1
        return built

    def _build_one(self, session: Session, run_id: int, source: str, group: list[Payment]) -> StellarTransaction:
        sequence = self._next_sequence.get(source)
        if sequence is None:
            account = self.client.account(source)
            if account is None:
                raise RunsError(f"transaction source {source} does not exist on the network")
            sequence = account.sequence + 1
        max_time = self._network_now() + self.config.tx_timeout_s
        memo = (
            bytes.fromhex(group[0].receipt_hash)
            if self.config.memo_mode == "per_receipt"
            else merkle_root([p.receipt_hash for p in group])
        )
        envelope = build_payment_envelope(
            network_passphrase=self.config.network_passphrase,
            source_account=source,
            sequence=sequence,
            payout_account=self.keys.payout_account,
            asset_code=self.asset.code,
            asset_issuer=self.asset.issuer,
            operations=[PaymentOp(p.destination, p.amount_tft_units) for p in group],
            memo_hash=memo,
            fee_per_operation_stroops=self._fee_per_op,
            min_time=0,
            max_time=max_time,
        )
        self.keys.sign(envelope)
        now = utcnow()
        tx = StellarTransaction(
            run_id=run_id,
            source_account=source,
            sequence=sequence,
            min_time=0,
            max_time=max_time,
            fee_stroops=self._fee_per_op * len(group),
            memo_hash=memo.hex(),
            envelope_xdr=envelope.to_xdr(),
            tx_hash=envelope.hash_hex(),
            status=TransactionStatus.BUILT,
            created_at=now,
            updated_at=now,
        )
        session.add(tx)
        session.flush()
        record_event(
            session,
            entity="stellar_transactions",
            entity_id=tx.id,
            run_id=run_id,
            event="transaction.built",
            to_status=TransactionStatus.BUILT,
            detail={"tx_hash": tx.tx_hash, "payments": len(group), "sequence": tx.sequence},
        )
        transition_many(
            session,
            Payment,
            [id_of(p) for p in group],
            PaymentStatus.PENDING,
            PaymentStatus.SUBMITTED,
            transitions=PAYMENT_TRANSITIONS,
            event="payment.in_transaction",
            run_id=run_id,
            detail={"tx_hash": tx.tx_hash},
            transaction_id=tx.id,
        )
        return tx

    def _network_now(self) -> int:
        """The network's clock (latest ledger close), re-read at most every few seconds."""
        now = time.monotonic()
        if self._clock is None or now - self._clock[1] > 5:
            self._clock = (int(self.client.latest_ledger().closed_at.timestamp()), now)
        return self._clock[0] + int(now - self._clock[1])

    # -- 3. submit and resolve ----------------------------------------------------------------

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

    def _bump_fee(self, session: Session, tx: StellarTransaction) -> str | None:
        """Raise the bid of a transaction the network refused for its fee, within the cap.

        The signed transaction is wrapped in a fee bump paid by its own source: its hash and
        sequence stay, so whichever envelope lands, it lands once. Later transactions bid the
        raised fee too. At the cap, the same bytes wait until the queue drains or, under rule 5,
        the transaction expires and is rebuilt.
        """
        passphrase = self.config.network_passphrase
        current = fee_bid_per_operation(tx.envelope_xdr, passphrase)
        raised = min(max(current * 2, self._fee_per_op), self.config.max_fee_stroops)
        self._fee_per_op = max(self._fee_per_op, raised)
        if raised <= current:
            log.warning("payment.fee.at_cap", run_id=tx.run_id, tx_hash=tx.tx_hash, fee_per_op_stroops=current)
            return None
        inner_xdr = inner_envelope_xdr(tx.envelope_xdr, passphrase)
        bump = build_fee_bump_envelope(
            network_passphrase=passphrase, inner_envelope_xdr=inner_xdr, fee_per_operation_stroops=raised
        )
        self.keys.sign(bump)
        operations = len(bump.transaction.inner_transaction_envelope.transaction.operations)
        bump_xdr = bump.to_xdr()
        session.execute(
            update(StellarTransaction)
            .where(col(StellarTransaction.id) == tx.id)
            .values(
                envelope_xdr=bump_xdr,
                fee_bump_hash=bump.hash_hex(),
                fee_stroops=raised * (operations + 1),
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )
        record_event(
            session,
            entity="stellar_transactions",
            entity_id=tx.id,
            run_id=tx.run_id,
            event="transaction.fee_bumped",
            detail={
                "tx_hash": tx.tx_hash,
                "fee_bump_hash": bump.hash_hex(),
                "fee_per_op_stroops": raised,
                "previous_fee_per_op_stroops": current,
            },
        )
        log.info("payment.fee.raised", run_id=tx.run_id, tx_hash=tx.tx_hash, fee_per_op_stroops=raised)
        return bump_xdr

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

    def _stop(self, session: Session, run: Run, reason: str) -> None:
        status = RunStatus(run.status)
        if status is RunStatus.STOPPED:
            return
        transition(
            session,
            Run,
            id_of(run),
            status,
            RunStatus.STOPPED,
            transitions=RUN_TRANSITIONS,
            event="run.stopped",
            detail={"reason": reason},
            status_reason=reason,
        )
        log.error("run.stopped", run_id=run.id, reason=reason)

    # -- the loop ----------------------------------------------------------------------------

    def pay(
        self,
        run_id: int,
        *,
        progress: Callable[[PayReport], None] | None = None,
        budget_s: float | None = None,
        wait_for_lease_s: float = 0.0,
    ) -> PayReport:
        """Pay the run to the end, or until it stops; safe to call again at any time.

        Each source (channel) keeps one transaction in flight: as soon as it resolves, the next
        one is built for that source, so ledgers fill while others are still being confirmed.
        HTTP runs on a thread per source; every ledger write stays on this thread.

        One payer drives a run at a time (a lease renewed as it works; RunBusy otherwise). The
        pause switch, or `budget_s` running out, stops new transactions: what is in flight is
        still resolved, and the report says `paying` with the reason, to be called again.
        `wait_for_lease_s`: how long to wait for another payer's lease (one that crashed
        lapses after the lease time).
        """
        owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        deadline = time.monotonic() + wait_for_lease_s
        while True:
            with self.units() as uow:  # a lease is a lock: each take is committed at once
                if acquire_lease(uow.session, run_id, owner, self.config.lease_ttl_s):
                    break
                run = require_run(uow.session, run_id)
                holder, until = run.lease_owner, run.lease_expires_at
            if time.monotonic() >= deadline:
                raise RunBusy(
                    f"run {run_id} is being paid by {holder} (its lease runs until {until:%H:%M:%S} UTC unless renewed)"
                )
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))
        try:
            return self._pay(run_id, owner, progress, budget_s)
        finally:
            with self.units() as uow:
                release_lease(uow.session, run_id, owner)

    def _pay(
        self, run_id: int, owner: str, progress: Callable[[PayReport], None] | None, budget_s: float | None
    ) -> PayReport:
        self.start(run_id)
        report = PayReport(run_id=run_id, status=RunStatus.PAYING)
        poll_s = self.config.poll_interval_s
        deadline = time.monotonic() + budget_s if budget_s is not None else None
        renewed_at = time.monotonic()

        def post(envelope_xdr: str, delay_s: float) -> SubmitResult:
            if delay_s:
                time.sleep(delay_s)
            return self.client.submit(envelope_xdr)

        sources = self._sources()
        with ThreadPoolExecutor(max_workers=len(sources)) as pool:
            inflight: dict = {}

            def send(tx_id: int, source: str, envelope_xdr: str, delay_s: float = 0.0) -> None:
                inflight[pool.submit(post, envelope_xdr, delay_s)] = (tx_id, source, envelope_xdr)

            with self.units() as uow:
                live = self._live(uow.session, run_id)
                paused = pause_state(uow.session).paused
            for tx in live:  # resume: resolve what a previous call left in flight first
                send(id_of(tx), tx.source_account, tx.envelope_xdr)
            if paused:
                report.reason = "paused"
            else:
                busy = {tx.source_account for tx in live}
                for tx in self.build_many(run_id, [s for s in sources if s not in busy]):
                    send(id_of(tx), tx.source_account, tx.envelope_xdr)
            while inflight:
                wait(inflight, return_when=FIRST_COMPLETED)
                # a ledger close answers many channels at once: resolve and refill them together
                answered = [(*inflight.pop(future), future.result()) for future in [f for f in inflight if f.done()]]
                verdicts = self.resolve_many(run_id, [(tx_id, result) for tx_id, _, _, result in answered], report)
                free: list[str] = []
                for tx_id, source, sent_xdr, _ in answered:
                    verdict, envelope_xdr = verdicts[tx_id]
                    if verdict is Verdict.MAYBE:
                        # the same bytes again after a pause; a fee bump goes out at once
                        send(tx_id, source, envelope_xdr, poll_s if envelope_xdr == sent_xdr else 0.0)
                    else:
                        free.append(source)
                if progress is not None:
                    progress(report)
                with self.units() as uow:
                    run = require_run(uow.session, run_id)
                    paused = pause_state(uow.session).paused
                if run.status == RunStatus.STOPPED:
                    report.status, report.reason = RunStatus.STOPPED, run.status_reason
                    for future in inflight:
                        future.cancel()
                    return report
                if time.monotonic() - renewed_at > self.config.lease_ttl_s / 3:
                    with self.units() as uow:
                        acquire_lease(uow.session, run_id, owner, self.config.lease_ttl_s)
                    renewed_at = time.monotonic()
                if paused or (deadline is not None and time.monotonic() > deadline):
                    report.reason = "paused" if paused else "time budget used; continue in the next task"
                    continue  # build nothing new; resolve what is in flight
                for tx in self.build_many(run_id, free):
                    send(id_of(tx), tx.source_account, tx.envelope_xdr)
        with self.units() as uow:
            session = uow.session
            run = require_run(session, run_id)
            open_payments = self._payments(session, run_id, PaymentStatus.PENDING, limit=1) + self._payments(
                session, run_id, PaymentStatus.SUBMITTED, limit=1
            )
            if run.status == RunStatus.PAYING and not open_payments:
                transition(
                    session,
                    Run,
                    run_id,
                    RunStatus.PAYING,
                    RunStatus.PAID,
                    transitions=RUN_TRANSITIONS,
                    event="run.paid",
                    detail={"paid": report.paid},
                )
                log.info("run.paid", run_id=run_id, paid=report.paid, transactions=report.transactions)
                report.reason = ""
            session.refresh(run)
            report.status = run.status
        return report
