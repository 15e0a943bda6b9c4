"""One payer per period, fenced on the chain (SPEC 10).

The claim is a data entry on the payout account named by network and period
(`payouts:claim:<network>:<period offset>`), whose value is a fresh random nonce per pay session
and the manifest's hash prefix. A pay session writes it first, by a transaction of the payout
account on the account's current sequence number: of two payers claiming at once only one
transaction lands (the other's sequence number is taken), and the other stops. Before every
build batch the payer reads the claim again and stops when it is not its own.

Taking over a claim this ledger did not write (a copy of the ledger, a restored backup, another
payer altogether) waits until the network's time is past the new claim's ledger close plus the
transaction timeout, so that nothing the previous payer built while it still held the claim can
land any more; the chain scan (scan.py) runs after that and before anything is sent.

The claim transaction is ours on record (purpose `claim`, its hash among our hashes): the scan
and reconciliation know it, and a payment transaction whose payout-account sequence number it
took is given up as "used by us", never as a stranger's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import structlog
from sqlalchemy import update
from sqlmodel import Session, col, select

from payouts.ledger.events import record_event
from payouts.ledger.kinds import TransactionPurpose
from payouts.ledger.models import PayerClaim, StellarTransaction
from payouts.ledger.repository import id_of
from payouts.ledger.states import TransactionStatus, transition
from payouts.ledger.transactions import record_transaction
from payouts.runs.approvals import build_manifest
from payouts.runs.errors import RunsError
from payouts.runs.payment.common import EngineState, LeaseLost, ledger_window
from payouts.runs.payment.resolve import chain_answer, own_hashes, sequence_landed_for_us_in
from payouts.runs.service import require_run
from payouts.stellar.claim import b64, build_claim_envelope, claim_name, claim_value, read_claim
from payouts.stellar.horizon import HorizonUnavailable, Outcome
from payouts.stellar.submit import Verdict

log = structlog.get_logger(__name__)

CLAIM_PURPOSE = TransactionPurpose.CLAIM
#: how often a claim is tried again when the account's sequence moved on but the claim did not
#: (our own payment transaction from the payout account took the number, or a slow network
#: let it expire)
CLAIM_ATTEMPTS = 10
#: how long a payer waits for a Horizon whose view of the payout account is older than its claim
STALE_VIEW_WAIT_S = 30.0


class ClaimLost(LeaseLost):
    """Another pay session of this same ledger took the period's claim over: this one stopped."""


@dataclass(frozen=True)
class HeldClaim:
    """The claim this pay session wrote."""

    name: str
    value_b64: str
    #: the payout account's sequence number the claim transaction used
    sequence: int
    ledger: int
    closed_at_s: int


def known_claim(session: Session, value_b64: str) -> bool:
    """Did this ledger write a claim with this value?"""
    return session.exec(select(PayerClaim.id).where(PayerClaim.value_b64 == value_b64)).first() is not None


class Claimer(EngineState):
    _claims: dict[int, HeldClaim]

    def claim(self, run_id: int, *, take_over: bool = False) -> str | None:
        """Write this session's claim for the run's period. Taking over a claim this ledger did
        not write (or any, with `take_over`) waits out the previous payer's transactions first.
        Returns why this payer must stop (another payer's claim landed first), or None."""
        payout = self.keys.payout_account
        with self.units() as uow:
            run = require_run(uow.session, run_id)
            name = claim_name(self.config.network_passphrase, run.period_offset)
            manifest_sha256 = build_manifest(uow.session, run).sha256
        taken = late = 0
        for _attempt in range(CLAIM_ATTEMPTS * 3):
            seen = read_claim(self.client, payout, name)
            if seen is None:
                raise RunsError(f"the payout account {payout} does not exist on this network")
            with self.units() as uow:
                foreign = take_over or (seen.value_b64 is not None and not known_claim(uow.session, seen.value_b64))
            value = claim_value(os.urandom(16), manifest_sha256)
            outcome = self._write_claim(run_id, name, value, seen.account_sequence + 1)
            if isinstance(outcome, HeldClaim):
                self._claims[run_id] = outcome
                log.info("claim.written", run_id=run_id, name=name, ledger=outcome.ledger, took_over=foreign)
                if foreign:
                    self._wait_out_previous_payer(run_id, outcome)
                return None
            if outcome == "late":
                # its bounds passed before it was applied: nothing took its number
                late += 1
                time.sleep(self.config.poll_interval_s)
                continue
            now = self._after_sequence(name, seen.account_sequence + 1)
            if now is not None and now.value_b64 != seen.value_b64:
                log.error("claim.lost", run_id=run_id, name=name)
                return self._lost_message(name)
            # the sequence number went to something else (our own payment transaction): again
            taken += 1
            if taken >= CLAIM_ATTEMPTS:
                break
            time.sleep(self.config.poll_interval_s)
        if taken < CLAIM_ATTEMPTS:
            raise RunsError(
                f"run {run_id}: the claim on {name} did not land: its bounds had passed when the network came to "
                f"apply it, {late} times (is Horizon's latest ledger behind the network's?)"
            )
        raise RunsError(
            f"run {run_id}: the claim on {name} did not land; the payout account's sequence number keeps "
            "moving (is another program sending from it?)"
        )

    def _after_sequence(self, name: str, sequence: int):
        """The claim once whatever took `sequence` of the payout account has landed (it may
        still be queued when ours is refused); after a transaction timeout, as it is."""
        deadline = time.monotonic() + self.config.tx_timeout_s + 2 * self.config.ledger_close_s
        while True:
            now = read_claim(self.client, self.keys.payout_account, name)
            if now is None or now.account_sequence >= sequence or time.monotonic() > deadline:
                return now
            time.sleep(self.config.poll_interval_s)

    def _lost_message(self, name: str) -> str:
        return (
            f"another payer took the claim {name} on the payout account first: this payer stopped and sent "
            "nothing. If that payer works from a copy or a restored backup of this ledger, only one of them "
            "may pay: stop the other, and run `payouts recover RUN` on the one that goes on"
        )

    def _write_claim(self, run_id: int, name: str, value: bytes, sequence: int) -> HeldClaim | str:
        """Build, record and submit the claim transaction: the claim when it landed, "taken"
        when its sequence number went to another transaction, "late" when its bounds passed."""
        payout = self.keys.payout_account
        latest = self.client.latest_ledger()
        max_time = int(latest.closed_at.timestamp()) + self.config.tx_timeout_s
        envelope = build_claim_envelope(
            network_passphrase=self.config.network_passphrase,
            payout_account=payout,
            sequence=sequence,
            name=name,
            value=value,
            fee_stroops=self._fee_per_op,
            max_time=max_time,
            max_ledger=latest.sequence + ledger_window(self.config),
        )
        self.keys.sign(envelope)
        with self.units() as uow:
            session = uow.session
            tx = record_transaction(
                session,
                run_id=run_id,
                purpose=CLAIM_PURPOSE,
                source_account=payout,
                sequence=sequence,
                envelope_xdr=envelope.to_xdr(),
                tx_hash=envelope.hash_hex(),
                fee_stroops=self._fee_per_op,
                memo_hash="",
                max_time=max_time,
                built_ledger=latest.sequence,
                max_ledger=latest.sequence + ledger_window(self.config),
                status=TransactionStatus.SUBMITTED,
            )
            now = tx.created_at
            claim = PayerClaim(
                run_id=run_id,
                data_name=name,
                value_b64=b64(value),
                transaction_id=tx.id,
                status="submitted",
                created_at=now,
            )
            session.add(claim)
            session.flush()
            record_event(
                session,
                entity="payer_claims",
                entity_id=claim.id,
                run_id=run_id,
                event="claim.submitted",
                detail={"name": name, "tx_hash": tx.tx_hash, "sequence": sequence},
            )
            tx_id, claim_id = id_of(tx), id_of(claim)
            uow.commit_before_submit()
        # the payout account's next number is no longer known when it is also a source
        self._next_sequence.pop(payout, None)
        envelope_xdr = envelope.to_xdr()
        while True:
            result = self.client.submit(envelope_xdr)
            code = result.result_codes.get("transaction")
            if result.outcome == Outcome.SUCCESS and result.ledger is not None and result.closed_at is not None:
                return self._claim_settled(tx_id, claim_id, name, sequence, result.ledger, result.closed_at)
            if result.outcome == Outcome.FAILED and code in ("tx_bad_seq", "tx_too_late"):
                # refused for good: the account's number is past ours, or the time bound passed
                log.warning("claim.refused", run_id=run_id, sequence=sequence, code=code, reason=result.reason)
                with self.units() as uow:
                    self._claim_failed(uow.session, tx_id, claim_id, TransactionStatus.DEAD, result.result_codes)
                return "taken" if code == "tx_bad_seq" else "late"
            if result.outcome == Outcome.FAILED and code != "tx_insufficient_fee":
                with self.units() as uow:
                    self._claim_failed(uow.session, tx_id, claim_id, TransactionStatus.FAILED, result.result_codes)
                raise RunsError(
                    f"run {run_id}: the network refused the claim transaction on the payout account "
                    f"({result.result_codes}); a new claim entry needs 0.5 XLM above the account's reserve"
                )
            if result.outcome == Outcome.UNKNOWN:
                with self.units() as uow:
                    row = uow.session.get(StellarTransaction, tx_id)
                    assert row is not None
                    hashes = own_hashes(uow.session, row)
                # the lookups by hash wait on Horizon: no unit of work is open meanwhile
                answer = chain_answer(self.client, row, hashes, partial(sequence_landed_for_us_in, self.units, row))
                if answer.verdict is Verdict.LANDED and answer.info is not None:
                    info = answer.info
                    break
                if answer.verdict is not Verdict.MAYBE:
                    log.warning("claim.not_landed", run_id=run_id, sequence=sequence, verdict=str(answer.verdict))
                    with self.units() as uow:
                        failed = answer.verdict is Verdict.FAILED
                        status = TransactionStatus.FAILED if failed else TransactionStatus.DEAD
                        self._claim_failed(uow.session, tx_id, claim_id, status, result.result_codes)
                        return "late" if answer.verdict is Verdict.NEVER else "taken"
            time.sleep(self.config.poll_interval_s)
        return self._claim_settled(tx_id, claim_id, name, sequence, info.ledger, info.closed_at)

    def _claim_settled(self, tx_id: int, claim_id: int, name: str, sequence: int, ledger: int, closed_at) -> HeldClaim:
        with self.units() as uow:
            session = uow.session
            tx = session.get(StellarTransaction, tx_id)
            assert tx is not None
            transition(
                session,
                StellarTransaction,
                tx_id,
                TransactionStatus(tx.status),
                TransactionStatus.CONFIRMED,
                event="transaction.confirmed",
                run_id=tx.run_id,
                detail={"ledger": ledger, "landed_hash": tx.tx_hash, "purpose": CLAIM_PURPOSE},
                ledger=ledger,
                closed_at=closed_at,
            )
            session.execute(
                update(PayerClaim)
                .where(col(PayerClaim.id) == claim_id)
                .values(status="landed", ledger=ledger, closed_at=closed_at)
                .execution_options(synchronize_session=False)
            )
            value_b64 = session.exec(select(PayerClaim.value_b64).where(PayerClaim.id == claim_id)).one()
        return HeldClaim(name, value_b64, sequence, ledger, int(closed_at.timestamp()))

    def _claim_failed(
        self, session: Session, tx_id: int, claim_id: int, status: TransactionStatus, codes: dict
    ) -> None:
        tx = session.get(StellarTransaction, tx_id)
        assert tx is not None
        if TransactionStatus(tx.status).is_live:
            transition(
                session,
                StellarTransaction,
                tx_id,
                TransactionStatus(tx.status),
                status,
                event=f"transaction.{status}",
                run_id=tx.run_id,
                detail={"result_codes": codes, "purpose": CLAIM_PURPOSE},
            )
        session.execute(
            update(PayerClaim)
            .where(col(PayerClaim.id) == claim_id)
            .values(status="lost")
            .execution_options(synchronize_session=False)
        )

    def _wait_out_previous_payer(self, run_id: int, claim: HeldClaim) -> None:
        """Until the network's time is past the claim's ledger close plus the transaction
        timeout (and a ledger more): whatever the previous payer built under its claim has
        expired by then."""
        until_s = claim.closed_at_s + self.config.tx_timeout_s + int(self.config.ledger_close_s + 1)
        log.warning("claim.takeover.wait", run_id=run_id, name=claim.name, until_network_time=until_s)
        with self.units() as uow:
            record_event(
                uow.session,
                entity="runs",
                entity_id=run_id,
                run_id=run_id,
                event="claim.taken_over",
                detail={"name": claim.name, "ledger": claim.ledger, "wait_until": until_s},
            )
        while True:
            latest = self.client.latest_ledger()
            if int(latest.closed_at.timestamp()) > until_s:
                return
            time.sleep(max(self.config.poll_interval_s, 0.05))

    def claim_lost(self, run_id: int) -> str | None:
        """Read the claim again (before a build batch): why this payer must stop, or None while
        the claim is its own. A Horizon whose view of the payout account predates the claim is
        asked again for a while. No unit of work is open while Horizon answers: the ledger is
        asked, in a unit of its own, only whose claim Horizon shows."""

        def known(value_b64: str) -> bool:
            with self.units() as uow:
                return known_claim(uow.session, value_b64)

        return self._claim_lost(run_id, known)

    def _claim_lost(self, run_id: int, known: Callable[[str], bool]) -> str | None:
        held = self._claims.get(run_id)
        if held is None:
            return None
        deadline = time.monotonic() + STALE_VIEW_WAIT_S
        while True:
            try:
                seen = read_claim(self.client, self.keys.payout_account, held.name)
            except HorizonUnavailable:
                # a Horizon restarting mid-run answers again within the wait; what is in flight
                # meanwhile is safe, and nothing new is built until the claim is read
                if time.monotonic() > deadline:
                    raise
                time.sleep(self.config.poll_interval_s)
                continue
            if seen is not None and seen.account_sequence >= held.sequence:
                break
            if time.monotonic() > deadline:
                return (
                    f"Horizon's view of the payout account is older than this payer's claim (ledger {held.ledger}) "
                    f"after {STALE_VIEW_WAIT_S:g} s: stopped before building more"
                )
            time.sleep(self.config.poll_interval_s)
        if seen.value_b64 == held.value_b64:
            return None
        if seen.value_b64 is not None and known(seen.value_b64):
            # another pay session of this same ledger took the period over (it holds the lease)
            raise ClaimLost(
                f"run {run_id}: another pay session of this ledger took the claim {held.name} over; this "
                "payer stopped (what it sent is in the ledger and is resolved by that payer)"
            )
        return (
            f"the claim {held.name} on the payout account is no longer this payer's (another payer, a copy or a "
            "restored backup of this ledger, wrote it): stopped before building more; find who pays from the "
            "account before continuing"
        )
