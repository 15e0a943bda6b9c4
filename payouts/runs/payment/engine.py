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

import os
import socket
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass

import structlog
from sqlmodel import Session

from payouts.ledger.errors import StaleStatus
from payouts.ledger.fingerprint import fingerprint_difference, record_fingerprint
from payouts.ledger.models import Payment, Run
from payouts.ledger.repository import id_of
from payouts.ledger.states import (
    PaymentStatus,
    RunStatus,
    transition,
    transition_many,
)
from payouts.ledger.unit_of_work import UnitOfWorkFactory
from payouts.runs.approvals import Manifest, require_approved
from payouts.runs.control import acquire_lease, lease_holder, pause_state, release_lease, renew_lease
from payouts.runs.errors import RunsError
from payouts.runs.payment.balances import CLAIMANTS, mark_claimable
from payouts.runs.payment.build import Builder
from payouts.runs.payment.claim import Claimer, ClaimLost, HeldClaim
from payouts.runs.payment.common import (
    LeaseLost,
    LedgerMoved,
    PayConfig,
    PayReport,
    RunAlreadyPaid,
    RunBusy,
    RunNotPayable,
    RunStopped,
)
from payouts.runs.payment.gate import check_manifest_binding, check_payments_against_receipts
from payouts.runs.payment.resolve import Resolver
from payouts.runs.payment.scan import (
    ChainHistory,
    ScanResult,
    chain_cursors,
    known_hashes,
    read_history,
    record_acceptance,
    scan_chain,
    scan_order,
)
from payouts.runs.retries_now import doubly_retried
from payouts.runs.service import require_run
from payouts.stellar.claim import claim_name
from payouts.stellar.horizon import HorizonClient, SubmitResult
from payouts.stellar.keys import SigningKeys
from payouts.stellar.network import BASE_RESERVE_STROOPS
from payouts.stellar.preflight import Asset, PreflightError, check_destinations, check_payout_account
from payouts.stellar.submit import Verdict

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Preflight:
    """A run the start found payable, as read: what the preflight checks on the network."""

    status: RunStatus
    period_offset: int
    pending: list[Payment]
    in_flight: list[Payment]


class PaymentEngine(Claimer, Builder, Resolver):
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
        #: per run, the manifest its approvals signed (checked against before each signature)
        self._approved: dict[int, Manifest] = {}
        #: per run, the claim on chain this pay session wrote (re-read before every build batch)
        self._claims: dict[int, HeldClaim] = {}

    # -- 1. start ----------------------------------------------------------------------------

    def start(self, run_id: int) -> None:
        """Check the run and take it to `paying`. A run that must stop is stopped on record
        first (that unit of work commits), then RunStopped is raised."""
        with self.units() as uow:
            checked = self._start(uow.session, run_id)
        # the preflight reads wait on Horizon: no unit of work is open meanwhile
        stopped = self._preflight(run_id, checked) if isinstance(checked, _Preflight) else checked
        if stopped is not None:
            raise RunStopped(f"run {run_id} stopped: {stopped}")

    def _start(self, session: Session, run_id: int) -> str | _Preflight | None:
        """Returns why the run stopped, None when it is paying, or what the preflight reads
        (outside this unit of work) before the run goes to paying."""
        run = require_run(session, run_id)
        status = RunStatus(run.status)
        if status.is_paid_or_after:
            raise RunAlreadyPaid(f"run {run_id} is already {status}")
        if status is RunStatus.STOPPED:
            raise RunNotPayable(
                f"run {run_id} is stopped: {run.status_reason}; an operator continues it "
                f"with `payouts continue {run_id}` once the cause is fixed"
            )
        if not status.is_payable:
            raise RunNotPayable(f"run {run_id} is {status}; only an approved run can be paid")
        if status is RunStatus.APPROVED and self.config.two_tier:
            raise RunNotPayable(
                f"run {run_id} is approved but not funded: export, sign and submit its funding "
                "transaction first (payouts funding export)"
            )
        # rows against their receipt bytes first: an edited row is named, not just "not approved"
        mismatch = check_payments_against_receipts(session, run)
        if mismatch is not None:
            return mismatch
        doubled = doubly_retried(session, run)
        if doubled is not None:
            self._stop(session, run, doubled)
            return doubled
        approved = require_approved(
            session, run, approvers=list(self.config.approvers), required=self.config.approvals_required
        )
        mismatch = check_manifest_binding(
            session,
            run,
            approved,
            network_passphrase=self.config.network_passphrase,
            payout_account=self.keys.payout_account,
        )
        if mismatch is not None:
            return mismatch
        self._approved[run_id] = approved
        if status is RunStatus.PAYING:
            return None
        pending = self._payments(session, run_id, PaymentStatus.PENDING)
        in_flight = self._payments(session, run_id, PaymentStatus.SUBMITTED)
        return _Preflight(status, run.period_offset, pending, in_flight)

    def _preflight(self, run_id: int, checked: _Preflight) -> str | None:
        """The payout account must cover the run and destinations that cannot receive are held
        (Horizon, read with no unit of work open); then, in one unit, the run goes to paying
        (each transition checks the row is still as it was read). Returns why it stopped."""
        pending = checked.pending
        total_units = sum(p.amount_tft_units for p in pending + checked.in_flight)
        fee_budget = 0 if self.keys.channel_accounts else len(pending) * self.config.max_fee_stroops
        try:
            check_payout_account(
                self.client,
                self.keys.payout_account,
                self.asset,
                total_units=total_units,
                fee_budget_stroops=fee_budget,
                data_entries=(claim_name(self.config.network_passphrase, checked.period_offset),),
            )
        except PreflightError as exc:
            with self.units() as uow:
                self._stop(uow.session, require_run(uow.session, run_id), f"preflight: {exc}")
            return str(exc)
        held = check_destinations(
            self.client, self.asset, [(p.destination, p.amount_tft_units) for p in pending], self._own_accounts()
        )
        claimable = self._claimable_instead(run_id, pending, held)
        if claimable:
            # each balance keeps one base reserve per claimant on the payout account until claimed
            try:
                check_payout_account(
                    self.client,
                    self.keys.payout_account,
                    self.asset,
                    total_units=total_units,
                    fee_budget_stroops=fee_budget + len(claimable) * CLAIMANTS * BASE_RESERVE_STROOPS,
                    data_entries=(claim_name(self.config.network_passphrase, checked.period_offset),),
                )
            except PreflightError as exc:
                with self.units() as uow:
                    self._stop(uow.session, require_run(uow.session, run_id), f"preflight: {exc} (claimable balances)")
                return str(exc)
        with self.units() as uow:
            session = uow.session
            mark_claimable(session, run_id, claimable)
            for reason in sorted(set(held.values())):
                ids = [id_of(p) for p in pending if held.get(p.destination) == reason]
                transition_many(
                    session,
                    Payment,
                    ids,
                    PaymentStatus.PENDING,
                    PaymentStatus.HELD,
                    event="payment.held.preflight",
                    run_id=run_id,
                    detail={"reason": reason},
                    hold_reason=reason,
                )
            transition(
                session,
                Run,
                run_id,
                checked.status,
                RunStatus.PAYING,
                event="run.paying",
                detail={"held_at_preflight": len(held)},
                status_reason="",
            )
        log.info("run.paying", run_id=run_id, pending=len(pending), held_destinations=len(held))
        return None

    def _claimable_instead(self, run_id: int, pending: list[Payment], held: dict[str, str]) -> list[int]:
        """The payments to send as claimable balances rather than hold: their destination only
        lacks a trustline, the setting is on and the signed manifest allows it. Taken out of
        `held`."""
        approved = self._approved.get(run_id)
        if not self.config.claimable_for_no_trustline or approved is None:
            return []
        if approved.claimable_reclaim_after_s is None:
            return []
        chosen = [id_of(p) for p in pending if held.get(p.destination) == "no_trustline"]
        for destination in [d for d, reason in held.items() if reason == "no_trustline"]:
            del held[destination]
        return chosen

    def _own_accounts(self) -> dict[str, str]:
        """Our accounts, never a destination, with the reason a payment to one is held."""
        own = {channel: "channel_account" for channel in self.keys.channel_accounts}
        own[self.keys.payout_account] = "payout_account"
        if self.config.treasury_account:
            own[self.config.treasury_account] = "treasury_account"
        return own

    def _check_payments_against_receipts(self, session: Session, run: Run) -> str | None:
        return check_payments_against_receipts(session, run)

    def scan(self, run_id: int, report: PayReport | None = None) -> str | None:
        """Scan the payout and channel accounts' history (payment/scan.py) in one unit of
        work; returns why the run stopped, or None."""
        history = self._chain_history(run_id)
        with self.units() as uow:
            session = uow.session
            run = require_run(session, run_id)
            result = scan_chain(
                session,
                self.client,
                run,
                payout_account=self.keys.payout_account,
                accounts=self._sources(),
                asset_code=self.asset.code,
                asset_issuer=self.asset.issuer,
                history=history,
            )
            if report is not None:
                report.paid += result.adopted_payments
                report.adopted += result.adopted_payments
            if result.problems:
                reason = "chain scan: " + "; ".join(result.problems[:3])
                self._stop(session, run, reason[:500])
                return reason
        return None

    def _chain_history(self, run_id: int) -> ChainHistory:
        """The accounts' history past their cursors: the cursors read in a unit of work, the
        history from Horizon once it is closed (the scan's unit then only matches)."""
        accounts = scan_order(self.keys.payout_account, self._sources())
        with self.units() as uow:
            cursors = chain_cursors(uow.session, accounts)
            known = known_hashes(uow.session)
            period_end_ts = require_run(uow.session, run_id).period_end_ts
        return read_history(self.client, cursors, known, period_end_ts)

    def recover(self, run_id: int, *, accept: str | None = None) -> tuple[str, ScanResult]:
        """`payouts recover`: scan the chain for the run; transactions from our accounts that
        match nothing stop it until an operator accepts them (`accept`: "who, why", on record).
        A run stopped by the scan continues as paying. Returns the run's status and the scan."""
        if accept is not None and ("," not in accept or not all(part.strip() for part in accept.split(",", 1))):
            raise RunsError('--accept takes "who, why": the operator and the reason, e.g. "ana, key rotation"')
        unexplained = ""
        with self.units() as uow:
            moved = fingerprint_difference(uow.session) is not None
        # the period's claim first: a takeover waits until the previous payer's transactions
        # have expired, so the scan sees everything it sent
        lost = self.claim(run_id, take_over=moved)
        if lost:
            raise RunStopped(lost)
        history = self._chain_history(run_id)
        with self.units() as uow:
            session = uow.session
            run = require_run(session, run_id)
            result = scan_chain(
                session,
                self.client,
                run,
                payout_account=self.keys.payout_account,
                accounts=self._sources(),
                asset_code=self.asset.code,
                asset_issuer=self.asset.issuer,
                history=history,
            )
            if result.problems and accept is None:
                unexplained = "; ".join(result.problems)  # adoptions and the cursor stay on record
            else:
                if result.problems and accept is not None:
                    record_acceptance(session, run, result.unmatched_hashes, accept.strip())
                if RunStatus(run.status) is RunStatus.STOPPED and run.status_reason.startswith("chain scan:"):
                    transition(
                        session,
                        Run,
                        run_id,
                        RunStatus.STOPPED,
                        RunStatus.PAYING,
                        event="run.continued",
                        detail={"after": "chain scan", "accepted_by": accept},
                        status_reason="",
                    )
                # the claim is this ledger's and the chain is scanned: this database pays now
                record_fingerprint(session, reason="payouts recover")
            session.flush()
            session.refresh(run)
            status = run.status
        if unexplained:
            raise RunStopped(unexplained)
        return status, result

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
        except StaleStatus:
            # rows moved under this payer: by the payer that took its lease, or a real conflict
            with self.units() as uow:
                holder = lease_holder(uow.session, run_id)
            if holder == owner:
                raise
            raise self._lease_lost(run_id, holder) from None
        finally:
            with self.units() as uow:
                release_lease(uow.session, run_id, owner)

    def _require_own_database(self, run_id: int) -> None:
        """A ledger restored from a backup or copied pays only after `payouts recover`; the
        first payer of a ledger records which database holds it."""
        with self.units() as uow:
            moved = fingerprint_difference(uow.session)
            if moved is None:
                record_fingerprint(uow.session, reason="first payer")
        if moved is not None:
            recorded, current = moved
            log.error("ledger.moved", run_id=run_id, recorded=recorded, current=current)
            raise LedgerMoved(
                f"this ledger was restored from a backup or copied (it was recorded in {recorded}, it is now in "
                f"{current}): it does not pay until `payouts recover {run_id}` has taken the period's claim "
                "over and scanned the chain"
            )

    def _lease_lost(self, run_id: int, holder: str | None) -> LeaseLost:
        log.warning("run.pay.lease_lost", run_id=run_id, holder=holder)
        return LeaseLost(
            f"run {run_id}: this payer lost its lease (it was held up longer than the lease time, "
            f"{self.config.lease_ttl_s:g} s) and stopped; {holder or 'the next payer'} drives the run now. "
            "What it sent is in the ledger and is resolved by that payer; nothing is paid twice."
        )

    def _pay(
        self, run_id: int, owner: str, progress: Callable[[PayReport], None] | None, budget_s: float | None
    ) -> PayReport:
        self._require_own_database(run_id)
        self.start(run_id)
        report = PayReport(run_id=run_id, status=RunStatus.PAYING)
        # one payer per period: this session's claim on chain first (a takeover waits); an
        # engine that still holds its claim from an earlier call keeps it
        try:
            held = run_id in self._claims and self.claim_lost(run_id) is None
        except ClaimLost:
            held = False  # another session of this ledger had it since (it held the lease)
        lost = None if held else self.claim(run_id)
        if lost:
            with self.units() as uow:
                self._stop(uow.session, require_run(uow.session, run_id), lost)
            report.status, report.reason = RunStatus.STOPPED, lost
            return report
        # the chain before anything is sent: this ledger may be a restored or copied one
        stopped = self.scan(run_id, report)
        if stopped:
            report.status, report.reason = RunStatus.STOPPED, stopped
            return report
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
                        renewed = renew_lease(uow.session, run_id, owner, self.config.lease_ttl_s)
                        holder = lease_holder(uow.session, run_id)
                    if not renewed:
                        for future in inflight:
                            future.cancel()
                        raise self._lease_lost(run_id, holder)
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
                    event="run.paid",
                    detail={"paid": report.paid},
                )
                log.info("run.paid", run_id=run_id, paid=report.paid, transactions=report.transactions)
                report.reason = ""
            session.refresh(run)
            report.status = run.status
            if run.status == RunStatus.STOPPED:
                report.reason = run.status_reason  # e.g. the gate refused to sign a payment
        return report
