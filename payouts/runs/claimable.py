"""Paying by claimable balance: the run's signed policy, and what became of each balance.

A destination whose only problem is a missing TFT trustline may be paid by a claimable balance
the farmer claims once the trustline exists (`PAYOUTS_CLAIMABLE_FOR_NO_TRUSTLINE`). The policy
(what it covers and the reclaim window) is written on the run before the first signature and
is part of the signed manifest: the engine pays this way only as signed, and a change of the
setting afterwards changes nothing signed (a different policy would void the approvals, so it
is refused once anyone approved).

A balance that landed is paid out (`claimable`): the money left the payout account on time.
When the farmer claims it the payment is `paid`; when the payout account takes it back after
the window (`payouts reclaim RUN`) the payment is `held` again (`not_claimed`), owed, and a
later run retries it. Horizon's payment history does not list these operations: balances are
read from `/claimable_balances` and their operations.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
import structlog
from sqlmodel import Session, col, select
from stellar_sdk import Account, ClaimClaimableBalance, TransactionBuilder

from payouts.ledger.events import record_event
from payouts.ledger.kinds import TransactionPurpose
from payouts.ledger.models import Payment, Run, StellarTransaction
from payouts.ledger.outstanding import settled_by_retries
from payouts.ledger.repository import id_of
from payouts.ledger.states import PaymentStatus, TransactionStatus, transition, transition_many
from payouts.ledger.transactions import record_transaction
from payouts.ledger.unit_of_work import UnitOfWorkFactory
from payouts.runs.errors import RunsError
from payouts.runs.payment.common import PayConfig
from payouts.runs.payment.send_own import Sent, send_recorded
from payouts.stellar.build import MAX_OPERATIONS
from payouts.stellar.claimable import BalanceState, read_balance
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.keys import SigningKeys

log = structlog.get_logger(__name__)

#: what the policy covers: destinations whose only problem is a missing TFT trustline
POLICY_FOR = "no_trustline"
#: the hold reason of a payment whose balance the payout account took back
NOT_CLAIMED = "not_claimed"
RECLAIM_PURPOSE = TransactionPurpose.RECLAIM


def policy_json(enabled: bool, reclaim_after_days: int) -> str:
    """The policy's canonical JSON as it goes into the manifest; "" when it is off."""
    if not enabled:
        return ""
    if reclaim_after_days <= 0:
        raise RunsError(f"the reclaim window must be at least one day, not {reclaim_after_days}")
    document = {"for": POLICY_FOR, "reclaim_after_s": reclaim_after_days * 86_400}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS).decode()


def describe_policy(text: str) -> str:
    if not text:
        return "claimable balances off (a destination without a TFT trustline is held)"
    document = orjson.loads(text)
    days = int(document.get("reclaim_after_s", 0)) / 86_400
    return f"claimable balances on for destinations without a TFT trustline, reclaimed after {days:g} days"


def record_claimable_policy(session: Session, run: Run, text: str, *, approved: int) -> bool:
    """Write the policy on the run before it is signed; False when it is already recorded.
    `approved`: valid approvals so far; a different policy would void them, so it is refused."""
    if run.claimable_policy_json == text:
        return False
    if approved:
        raise RunsError(
            f"run {run.id}'s manifest records {describe_policy(run.claimable_policy_json)}, signed by {approved} "
            f"approver(s); this machine's settings (PAYOUTS_CLAIMABLE_FOR_NO_TRUSTLINE, "
            f"PAYOUTS_CLAIMABLE_RECLAIM_AFTER_DAYS) say {describe_policy(text)}, which would void their "
            "approvals. Sign with the recorded policy (the same settings as the first approver), or reject the run"
        )
    run.claimable_policy_json = text
    session.add(run)
    session.flush()
    record_event(
        session,
        entity="runs",
        entity_id=id_of(run),
        run_id=id_of(run),
        event="run.claimable_policy.recorded",
        detail={"policy": orjson.loads(text) if text else None},
    )
    return True


@dataclass
class Settlement:
    """What the chain says became of the balances looked at."""

    claimed: int = 0
    reclaimed: int = 0
    live: int = 0
    #: live balances the payout account may take back now (`payouts reclaim RUN`), by run
    due: dict[int, list[int]] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)
    #: the chain transactions that took reclaimed balances back (ours, or one a restored ledger lost)
    reclaimed_by: list[str] = field(default_factory=list)

    def document(self) -> dict:
        return {
            "claimed": self.claimed,
            "reclaimed": self.reclaimed,
            "live": self.live,
            "due": {str(run_id): ids for run_id, ids in sorted(self.due.items())},
            "differences": self.differences,
        }


def _network_now(client: HorizonClient) -> datetime:
    return client.latest_ledger().closed_at.astimezone(UTC)


def waiting_payments(session: Session, run_id: int | None = None) -> list[Payment]:
    statement = select(Payment).where(Payment.status == PaymentStatus.CLAIMABLE).order_by(col(Payment.id))
    if run_id is not None:
        statement = statement.where(Payment.run_id == run_id)
    return list(session.exec(statement).all())


def settle_balances(
    session: Session, client: HorizonClient, payout_account: str, *, run_id: int | None = None
) -> Settlement:
    """Read every waiting balance (of one run, or all): a claimed one settles its payment (and
    the chain it retries), a reclaimed one makes it owed again. Writes through the caller's
    session; never commits."""
    result = Settlement()
    waiting = waiting_payments(session, run_id)
    if not waiting:
        return result  # nothing to ask Horizon
    now = _network_now(client)
    counts = Counter(p.claimable_balance_id for p in waiting_payments(session) if p.claimable_balance_id)
    for payment in waiting:
        if not payment.claimable_balance_id:
            result.differences.append(f"payment {payment.id} is claimable in the ledger without a balance id")
            continue
        if counts[payment.claimable_balance_id] > 1:
            # one balance settles one receipt: an edited row may name another payment's balance
            result.differences.append(
                f"payment {payment.id}: its claimable balance {payment.claimable_balance_id} is recorded for "
                f"{counts[payment.claimable_balance_id]} payments; nothing settled"
            )
            continue
        seen = read_balance(client, payment.claimable_balance_id, payout_account)
        if seen.state is BalanceState.LIVE:
            result.live += 1
            if payment.claimable_until is not None and payment.claimable_until <= now:
                result.due.setdefault(payment.run_id, []).append(id_of(payment))
            continue
        if seen.state is BalanceState.UNKNOWN:
            result.differences.append(
                f"payment {payment.id}: its claimable balance {payment.claimable_balance_id} is not on chain"
            )
            continue
        detail = {"balance_id": payment.claimable_balance_id, "claimant": seen.claimant, "tx_hash": seen.tx_hash}
        if seen.state is BalanceState.CLAIMED:
            if seen.claimant != payment.destination:
                result.differences.append(
                    f"payment {payment.id}: its balance was claimed by {seen.claimant}, not {payment.destination}"
                )
                continue
            transition(
                session,
                Payment,
                id_of(payment),
                PaymentStatus.CLAIMABLE,
                PaymentStatus.PAID,
                event="payment.claimed",
                run_id=payment.run_id,
                detail=detail,
            )
            transition_many(
                session,
                Payment,
                settled_by_retries(session, [id_of(payment)]),
                PaymentStatus.HELD,
                PaymentStatus.RETRIED,
                event="payment.retried",
                run_id=payment.run_id,
                detail={"tx_hash": payment.tx_hash},
            )
            result.claimed += 1
        else:
            # back on the payout account: owed again, retried by a later run
            transition(
                session,
                Payment,
                id_of(payment),
                PaymentStatus.CLAIMABLE,
                PaymentStatus.HELD,
                event="payment.reclaimed",
                run_id=payment.run_id,
                detail=detail,
                hold_reason=NOT_CLAIMED,
                paid_at=None,
                transaction_id=None,
            )
            result.reclaimed += 1
            if seen.tx_hash and seen.tx_hash not in result.reclaimed_by:
                result.reclaimed_by.append(seen.tx_hash)
    session.flush()
    if result.claimed or result.reclaimed:
        log.info("payment.claimable.settled", run_id=run_id, claimed=result.claimed, reclaimed=result.reclaimed)
    return result


def claimable_until(closed_at: datetime, reclaim_after_s: int) -> datetime:
    """When the payout account may claim: the creating ledger's close time plus the window
    (the chain makes the relative predicate absolute at creation)."""
    return closed_at + timedelta(seconds=reclaim_after_s)


@dataclass(frozen=True)
class ReclaimResult:
    run_id: int
    #: reclaimed | adopted (the chain has a reclaim the ledger lacked) | nothing due | waiting | failed
    state: str
    reclaimed: int = 0
    claimed: int = 0
    tx_hash: str | None = None
    message: str = ""


def reclaim_run(
    units: UnitOfWorkFactory, run_id: int, client: HorizonClient, keys: SigningKeys, config: PayConfig
) -> ReclaimResult:
    """Take the run's balances whose window has passed back into the payout account, once.

    The reclaim transaction is ours under the same rules as payments: committed before it is
    sent, resubmitted only as the identical bytes, looked up by hash on an unknown outcome."""
    payout = keys.payout_account
    with units() as uow:
        session = uow.session
        if session.get(Run, run_id) is None:
            raise RunsError(f"run {run_id} does not exist")
        before = settle_balances(session, client, payout, run_id=run_id)
        live = session.exec(
            select(StellarTransaction).where(
                StellarTransaction.run_id == run_id,
                StellarTransaction.purpose == RECLAIM_PURPOSE,
                col(StellarTransaction.status).in_([TransactionStatus.BUILT, TransactionStatus.SUBMITTED]),
            )
        ).first()
        if live is None:
            due = before.due.get(run_id, [])[:MAX_OPERATIONS]
            if not due and before.reclaimed:
                # a restored ledger lost the reclaim: the chain has it, the receipts are owed again
                # now (settle_balances), and nothing is sent: a second reclaim could only fail
                return _adopted(run_id, before)
            if not due:
                waiting = len(waiting_payments(session, run_id))
                return ReclaimResult(
                    run_id,
                    "nothing due",
                    claimed=before.claimed,
                    message=f"run {run_id}: no claimable balance is past its window "
                    f"({waiting} waiting to be claimed, {before.claimed} claimed now)",
                )
            payments = [session.get(Payment, payment_id) for payment_id in due]
            live = _build(session, run_id, client, keys, config, [p for p in payments if p is not None])
        if live.status == TransactionStatus.BUILT:
            transition(
                session,
                StellarTransaction,
                id_of(live),
                TransactionStatus.BUILT,
                TransactionStatus.SUBMITTED,
                event="reclaim.submitted",
                run_id=run_id,
            )
            uow.commit_before_submit()
        state, tx_hash = send_recorded(session, client, live, config, event_prefix="reclaim").state, live.tx_hash
        after = settle_balances(session, client, payout, run_id=run_id)
    claimed = before.claimed + after.claimed
    if state is Sent.LANDED:
        return ReclaimResult(
            run_id,
            "reclaimed",
            after.reclaimed,
            claimed,
            tx_hash,
            f"run {run_id}: {after.reclaimed} unclaimed balance(s) back in the payout account ({tx_hash}); "
            "their receipts are owed again and the next run pays them",
        )
    if state is Sent.FAILED:
        return ReclaimResult(
            run_id,
            "failed",
            after.reclaimed,
            claimed,
            tx_hash,
            f"run {run_id}: the reclaim {tx_hash} did not land ({claimed} balance(s) were claimed by their "
            "farmers meanwhile); run `payouts reclaim` again for the rest",
        )
    return ReclaimResult(
        run_id,
        "waiting",
        0,
        claimed,
        tx_hash,
        f"run {run_id}: the reclaim {tx_hash} may still land; run `payouts reclaim {run_id}` again to look it up",
    )


def _adopted(run_id: int, seen: Settlement) -> ReclaimResult:
    hashes = ", ".join(seen.reclaimed_by) or "unknown"
    log.warning("reclaim.adopted", run_id=run_id, reclaimed=seen.reclaimed, tx_hashes=seen.reclaimed_by)
    return ReclaimResult(
        run_id,
        "adopted",
        seen.reclaimed,
        seen.claimed,
        seen.reclaimed_by[0] if seen.reclaimed_by else None,
        f"run {run_id}: the chain already took {seen.reclaimed} unclaimed balance(s) back ({hashes}), which "
        "this ledger lacked; recorded, nothing sent. Their receipts are owed again and the next run pays them",
    )


def _build(
    session: Session,
    run_id: int,
    client: HorizonClient,
    keys: SigningKeys,
    config: PayConfig,
    payments: list[Payment],
) -> StellarTransaction:
    payout = keys.payout_account
    account = client.account(payout)
    if account is None:
        raise RunsError(f"the payout account {payout} does not exist on this network")
    latest = client.latest_ledger()
    # the network's clock, not this machine's: the window is the chain's time too
    max_time = int(latest.closed_at.timestamp()) + config.tx_timeout_s
    max_ledger = latest.sequence + max(2, math.ceil(config.tx_timeout_s / config.ledger_close_s))
    builder = TransactionBuilder(
        Account(payout, account.sequence), config.network_passphrase, base_fee=config.base_fee_stroops
    )
    builder.add_time_bounds(0, max_time)
    builder.set_ledger_bounds(0, max_ledger)
    for payment in payments:
        builder.append_operation(ClaimClaimableBalance(str(payment.claimable_balance_id)))
    envelope = builder.build()
    keys.sign(envelope)
    return record_transaction(
        session,
        run_id=run_id,
        purpose=RECLAIM_PURPOSE,
        source_account=payout,
        sequence=account.sequence + 1,
        envelope_xdr=envelope.to_xdr(),
        tx_hash=envelope.hash_hex(),
        fee_stroops=config.base_fee_stroops * len(payments),
        memo_hash="",
        max_time=max_time,
        built_ledger=latest.sequence,
        max_ledger=max_ledger,
        event="reclaim.built",
        detail={"balances": [p.claimable_balance_id for p in payments]},
    )
