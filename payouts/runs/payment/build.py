"""Building: pending payments into signed transactions, committed before anything is sent."""

from __future__ import annotations

import time

import structlog
from sqlalchemy import update
from sqlmodel import Session, col

from payouts.ledger.events import record_event
from payouts.ledger.kinds import HashKind, PaymentDelivery, TransactionPurpose
from payouts.ledger.models import Payment, StellarTransaction, TransactionHash
from payouts.ledger.repository import id_of
from payouts.ledger.states import (
    PaymentStatus,
    TransactionStatus,
    transition,
    transition_many,
)
from payouts.ledger.transactions import record_transaction
from payouts.ledger.types import utcnow
from payouts.runs.approvals import Manifest, require_approved
from payouts.runs.errors import RunsError
from payouts.runs.payment.balances import record_balance_ids
from payouts.runs.payment.common import EngineState, ledger_window
from payouts.runs.payment.gate import check_before_signing
from payouts.runs.payment.queries import stop_run
from payouts.runs.service import require_run
from payouts.stellar.build import (
    PaymentOp,
    build_fee_bump_envelope,
    build_payment_envelope,
    fee_bid_per_operation,
    inner_envelope_xdr,
)
from payouts.stellar.merkle import merkle_root

log = structlog.get_logger(__name__)


class GateRefused(RunsError):
    """A transaction the gate refused to sign; the message names the payment and the field."""


class Builder(EngineState):
    def _approved_manifest(self, session: Session, run_id: int) -> Manifest:
        """The manifest the run's approvals signed (checked when the run started)."""
        if run_id not in self._approved:
            self._approved[run_id] = require_approved(
                session,
                require_run(session, run_id),
                approvers=list(self.config.approvers),
                required=self.config.approvals_required,
            )
        return self._approved[run_id]

    def claim_lost(self, run_id: int) -> str | None:
        """Why this payer no longer holds the period's claim, or None (claim.py)."""
        return None

    def _sources(self) -> list[str]:
        return self.keys.channel_accounts or [self.keys.payout_account]

    def build_many(self, run_id: int, sources: list[str]) -> list[StellarTransaction]:
        """One transaction per free source, as far as pending payments go, in one commit.

        The envelopes, hashes, sequences and bounds are committed (as `submitted`: from here on
        they may be on the wire) before the caller sends them. One commit for all the channels a
        ledger close freed keeps them all in time for the next ledger.
        """
        per_tx = 1 if self.config.memo_mode == "per_receipt" else self.config.batch_size
        built: list[StellarTransaction] = []
        with self.units() as uow:
            waiting = len(self._payments(uow.session, run_id, PaymentStatus.PENDING, limit=per_tx * len(sources)))
        # what Horizon says is read before the unit that builds opens: none waits on the network
        sources = sources[: -(-waiting // per_tx)]
        if not sources:
            return built
        # one payer per period: the claim on chain is read again before every batch
        lost = self.claim_lost(run_id)
        if lost is not None:
            with self.units() as uow:
                stop_run(uow.session, require_run(uow.session, run_id), lost)
            return []
        for source in sources:
            self._next_sequence[source] = self._source_sequence(source)
        # the ledger bound counts from the network's latest ledger, read once per batch (last:
        # the network clock the time bounds count from is fresh while the unit builds)
        built_ledger = self._latest_ledger_now()
        with self.units() as uow:
            session = uow.session
            # read again in the unit that writes: the rows as they are now
            pending = self._payments(session, run_id, PaymentStatus.PENDING, limit=per_tx * len(sources))
            groups = [pending[i : i + per_tx] for i in range(0, len(pending), per_tx)]
            for source, group in zip(sources, groups, strict=False):
                try:
                    built.append(self._build_one(session, run_id, source, group, built_ledger))
                except GateRefused as refused:
                    # nothing of this group was signed or recorded; the run stops on record
                    stop_run(session, require_run(session, run_id), str(refused))
                    break
            session.flush()
            for tx in built:
                transition(
                    session,
                    StellarTransaction,
                    id_of(tx),
                    TransactionStatus.BUILT,
                    TransactionStatus.SUBMITTED,
                    event="transaction.submitted",
                    run_id=run_id,
                )
            uow.commit_before_submit()
        for tx in built:
            self._next_sequence[tx.source_account] = tx.sequence + 1
        return built

    def _latest_ledger_now(self) -> int:
        latest = self.client.latest_ledger()
        self._clock = (int(latest.closed_at.timestamp()), time.monotonic())
        return latest.sequence

    def _build_one(
        self, session: Session, run_id: int, source: str, group: list[Payment], built_ledger: int
    ) -> StellarTransaction:
        sequence = self._source_sequence(source)
        max_time = self._network_now() + self.config.tx_timeout_s
        max_ledger = built_ledger + ledger_window(self.config)
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
            operations=[
                PaymentOp(p.destination, p.amount_tft_units, self._reclaim_after_s(session, run_id, p)) for p in group
            ],
            memo_hash=memo,
            fee_per_operation_stroops=self._fee_per_op,
            min_time=0,
            max_time=max_time,
            max_ledger=max_ledger,
        )
        refusal = check_before_signing(
            session,
            self._approved_manifest(session, run_id),
            group,
            envelope,
            memo_mode=self.config.memo_mode,
            asset_code=self.asset.code,
            asset_issuer=self.asset.issuer,
            payout_account=self.keys.payout_account,
        )
        if refusal is not None:
            raise GateRefused(refusal)
        self.keys.sign(envelope)
        tx = record_transaction(
            session,
            run_id=run_id,
            purpose=TransactionPurpose.PAYMENT,
            source_account=source,
            sequence=sequence,
            envelope_xdr=envelope.to_xdr(),
            tx_hash=envelope.hash_hex(),
            fee_stroops=self._fee_per_op * len(group),
            memo_hash=memo.hex(),
            max_time=max_time,
            built_ledger=built_ledger,
            max_ledger=max_ledger,
            event="transaction.built",
            detail={"payments": len(group), "sequence": sequence, "max_ledger": max_ledger},
        )
        transition_many(
            session,
            Payment,
            [id_of(p) for p in group],
            PaymentStatus.PENDING,
            PaymentStatus.SUBMITTED,
            event="payment.in_transaction",
            run_id=run_id,
            detail={"tx_hash": tx.tx_hash},
            transaction_id=tx.id,
        )
        record_balance_ids(session, group, envelope)
        return tx

    def _reclaim_after_s(self, session: Session, run_id: int, payment: Payment) -> int | None:
        """The signed reclaim window for a payment sent as a claimable balance, else None."""
        if payment.delivery != PaymentDelivery.CLAIMABLE_BALANCE:
            return None
        window = self._approved_manifest(session, run_id).claimable_reclaim_after_s
        if window is None:
            raise GateRefused(
                f"payment {payment.id} is to be sent as a claimable balance, which the signed manifest "
                "does not allow (field claimable_balances)"
            )
        return window

    def _source_sequence(self, source: str) -> int:
        """The source's next sequence number: known from our own transactions, else read."""
        sequence = self._next_sequence.get(source)
        if sequence is None:
            account = self.client.account(source)
            if account is None:
                raise RunsError(f"transaction source {source} does not exist on the network")
            sequence = account.sequence + 1
        return sequence

    def _network_now(self) -> int:
        """The network's clock (latest ledger close), re-read at most every few seconds."""
        now = time.monotonic()
        if self._clock is None or now - self._clock[1] > 5:
            self._clock = (int(self.client.latest_ledger().closed_at.timestamp()), now)
        return self._clock[0] + int(now - self._clock[1])

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
        # every bump stays ours: an earlier one may be what lands
        session.add(
            TransactionHash(
                tx_hash=bump.hash_hex(), transaction_id=id_of(tx), kind=HashKind.FEE_BUMP, created_at=utcnow()
            )
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
