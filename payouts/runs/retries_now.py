"""Outstanding retries paid between months: an off-cycle run (`payouts run --retries-now`).

A farmer who fixes a wallet (adds the TFT trustline, drops the memo requirement) need not wait
for the next period. The held payments still owed whose destination can receive now become the
retries of a run of its own, kind `off_cycle`: its own manifest, review, approvals and funding,
paid by the same engine as a monthly run. It carries the period of the newest monthly run and
never holds that period: the one-live-run-per-period rule counts monthly runs only.

A retry in a live off-cycle run is a live retry like any other: the next monthly run does not
retry the same payment again, and once it is paid the held original is settled (`retried`). A
rejected off-cycle run gives its payments back to the next run.

Selecting is kept apart from what "outstanding" means: `select_receivable` takes the candidate
rows, whatever derived them, and keeps those that can be paid now.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select
from stellar_sdk import StrKey

from payouts import CODE_VERSION
from payouts.calculation.receipts import receipt_hash, retry_receipt_bytes
from payouts.ledger import repository
from payouts.ledger.events import record_event
from payouts.ledger.kinds import PaymentKind
from payouts.ledger.models import Payment, Receipt, Run
from payouts.ledger.outstanding import outstanding
from payouts.ledger.repository import MONTHLY_RUN, OFF_CYCLE_RUN, id_of
from payouts.ledger.states import DEAD_RUN_STATUSES, FINISHED_RUN_STATUSES, PaymentStatus, RunStatus
from payouts.money import format_tft
from payouts.periods import Period
from payouts.runs.errors import RunsError
from payouts.runs.retries import retries_so_far

#: (destination, amount in TFT units) pairs -> destinations that cannot receive, with the reason
HoldCheck = Callable[[list[tuple[str, int]]], Mapping[str, str]]


class NothingToRetry(RunsError):
    """No outstanding retry can be paid now; the message says what is still held and why."""


@dataclass(frozen=True)
class Candidate:
    """A held payment still owed, and the run that holds it."""

    payment: Payment
    run: Run


@dataclass(frozen=True)
class Selected:
    """A candidate whose destination can receive now, and that destination."""

    candidate: Candidate
    destination: str


@dataclass(frozen=True)
class Selection:
    selected: list[Selected]
    #: candidates left out, with why (their destination's hold reason, or no usable address)
    still_held: list[tuple[Candidate, str]]


def outstanding_held(session: Session) -> list[Candidate]:
    """Held payments still owed: the newest entry of each retry chain (ledger/outstanding.py,
    the derivation `held`, the export and the site count from) that is held."""
    held = sorted(entry.payment_id for entry in outstanding(session) if entry.status == PaymentStatus.HELD)
    candidates = []
    for payment_id in held:
        payment = session.get(Payment, payment_id)
        run = session.get(Run, payment.run_id) if payment is not None else None
        if payment is not None and run is not None:
            candidates.append(Candidate(payment, run))
    return candidates


def current_addresses(session: Session) -> dict[int, str]:
    """Each farm's payout address as its newest live monthly run recorded it."""
    rows = session.exec(
        select(Receipt.farm_id, Receipt.stellar_payout_address)
        .join(Run, col(Receipt.run_id) == col(Run.id))
        .where(col(Run.status).not_in(DEAD_RUN_STATUSES), Run.kind == MONTHLY_RUN)
        .order_by(col(Run.period_offset), col(Run.id))
    ).all()
    return {farm_id: address for farm_id, address in rows}  # the newest run's row wins


def select_receivable(
    session: Session,
    candidates: Iterable[Candidate],
    addresses: Mapping[int, str],
    holds: HoldCheck,
    *,
    max_retries: int | None = None,
) -> Selection:
    """The candidates that can be paid now: a usable address (the farm's current one, else the
    one it was held at) that the hold checks of preflight pass (`holds`: the same checks the
    engine runs before paying). `max_retries` bounds how often one receipt is retried."""
    selected: list[Selected] = []
    still_held: list[tuple[Candidate, str]] = []
    addressed: list[tuple[Candidate, str]] = []
    for candidate in candidates:
        payment = candidate.payment
        if max_retries is not None and retries_so_far(session, payment) >= max_retries:
            still_held.append((candidate, "retried_too_often"))
            continue
        address = addresses.get(payment.farm_id, "")
        if not StrKey.is_valid_ed25519_public_key(address):
            address = payment.destination
        if not StrKey.is_valid_ed25519_public_key(address):
            still_held.append((candidate, payment.hold_reason or "no_address"))
            continue
        addressed.append((candidate, address))
    refused = holds([(address, c.payment.amount_tft_units) for c, address in addressed]) if addressed else {}
    for candidate, address in addressed:
        reason = refused.get(address)
        if reason is None:
            selected.append(Selected(candidate, address))
        else:
            still_held.append((candidate, reason))
    return Selection(selected, still_held)


def open_off_cycle_run(session: Session) -> Run | None:
    """The off-cycle run not done yet (reconciled and exported runs are done), if any."""
    return session.exec(
        select(Run)
        .where(Run.kind == OFF_CYCLE_RUN, col(Run.status).not_in(FINISHED_RUN_STATUSES))
        .order_by(col(Run.id))
    ).first()


def record_off_cycle_run(session: Session, selection: Selection, now: datetime) -> Run:
    """Record the selected retries as a new off-cycle run (status `calculated`, waiting for its
    review and approvals). Raises NothingToRetry when nothing was selected."""
    if not selection.selected:
        raise NothingToRetry(_nothing_message(selection))
    basis = session.exec(
        select(Run)
        .where(Run.kind == MONTHLY_RUN, col(Run.status).not_in(DEAD_RUN_STATUSES))
        .order_by(col(Run.period_offset).desc(), col(Run.id).desc())
    ).first()
    if basis is None:
        raise RunsError("no monthly run is in the ledger yet: there is nothing to retry")
    rows = [_retry_row(session, chosen, basis, now) for chosen in selection.selected]
    hashes = sorted(row["receipt_hash"] for row in rows)
    total_units = sum(row["amount_tft_units"] for row in rows)
    total_musd = 0
    for chosen in selection.selected:
        original = (
            session.get(Receipt, chosen.candidate.payment.receipt_id) if chosen.candidate.payment.receipt_id else None
        )
        total_musd += original.reward_musd if original else 0
    headline = (
        f"off-cycle run: {len(rows)} retries of held payments, {format_tft(total_units)} TFT, "
        f"beside period {Period(basis.period_offset).label}'s monthly run {basis.id}"
    )
    notes = [headline] + [_note(chosen) for chosen in selection.selected]
    run = Run(
        period_offset=basis.period_offset,
        period_start_ts=basis.period_start_ts,
        period_end_ts=basis.period_end_ts,
        network=basis.network,
        # what the run was made from: its retry receipts (there is no snapshot)
        snapshot_sha256=hashlib.sha256("\n".join(hashes).encode()).hexdigest(),
        snapshot_name="off-cycle retries",
        code_version=CODE_VERSION,
        status=RunStatus.CALCULATED,
        total_musd=total_musd,
        total_tft_units=total_units,
        payable_tft_units=total_units,
        node_count=len(rows),
        rewarded_node_count=len(rows),
        report_json=orjson.dumps({"kind": OFF_CYCLE_RUN, "notes": notes}).decode(),
        kind=OFF_CYCLE_RUN,
        created_at=now,
        updated_at=now,
    )
    session.add(run)
    session.flush()
    run_id = id_of(run)
    for row in rows:
        row["run_id"] = run_id
        row["idempotency_key"] = f"retry:{run_id}:{row['retry_of_payment_id']}"
    repository.add_payments(session, rows)
    record_event(
        session,
        entity="runs",
        entity_id=run_id,
        run_id=run_id,
        event="run.calculated",
        to_status=RunStatus.CALCULATED,
        detail={"kind": OFF_CYCLE_RUN, "retries": len(rows), "total_tft_units": total_units},
    )
    return run


def _retry_row(session: Session, chosen: Selected, basis: Run, now: datetime) -> dict:
    """A retry payment as a monthly run writes it (a minting-style retry receipt), retrying in
    the period of the newest monthly run."""
    payment, held_run = chosen.candidate.payment, chosen.candidate.run
    original = session.get(Receipt, payment.receipt_id) if payment.receipt_id else None
    document = {
        "failed_payout_period": {"start": held_run.period_start_ts, "end": held_run.period_end_ts},
        "retry_period": {"start": basis.period_start_ts, "end": basis.period_end_ts},
        "farm_id": payment.farm_id,
        "previous_stellar_payout_address": payment.destination,
        "stellar_payout_address": chosen.destination,
        "retry_for_receipt": payment.receipt_hash,
        "reward": {"musd": original.reward_musd if original else 0, "tft": payment.amount_tft_units},
    }
    data = retry_receipt_bytes(document)
    return {
        "receipt_id": payment.receipt_id,
        "kind": PaymentKind.RETRY,
        "receipt_hash": receipt_hash(data),
        "receipt_bytes": data,
        "retry_of_payment_id": payment.id,
        "farm_id": payment.farm_id,
        "node_id": payment.node_id,
        "destination": chosen.destination,
        "amount_tft_units": payment.amount_tft_units,
        "status": PaymentStatus.PENDING,
        "hold_reason": "",
        "in_manifest": True,
        "payout_basis": payment.payout_basis,
        "created_at": now,
        "updated_at": now,
    }


def _note(chosen: Selected) -> str:
    payment, held_run = chosen.candidate.payment, chosen.candidate.run
    return (
        f"retry of receipt {payment.receipt_hash[:16]} (farm {payment.farm_id}, node {payment.node_id}), held in "
        f"run {held_run.id} ({payment.hold_reason or 'held'}): {format_tft(payment.amount_tft_units)} TFT "
        f"to {chosen.destination}"
    )


def _nothing_message(selection: Selection) -> str:
    if not selection.still_held:
        return "no payment is held: nothing to retry"
    reasons: dict[str, int] = {}
    for _, reason in selection.still_held:
        reasons[reason] = reasons.get(reason, 0) + 1
    listed = ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
    return (
        f"no held payment can be paid now: {len(selection.still_held)} still held ({listed}); "
        "they are retried once their destination can receive (payouts held)"
    )


def summarize(selection: Selection) -> Sequence[str]:
    """One line per candidate left held, for the operator."""
    return [
        f"still held: receipt {c.payment.receipt_hash[:16]} (farm {c.payment.farm_id}): {reason}"
        for c, reason in selection.still_held
    ]


def doubly_retried(session: Session, run: Run) -> str | None:
    """Why `run` must not pay, or None: a payment it retries is retried by another live run too.

    Each run retries only what no live run retries, but two runs recorded at the same moment (an
    off-cycle run and a period's calculation) may each have read the other's payments as still
    held; whichever starts paying second would pay the same receipt again.
    """
    other = aliased(Payment, name="other")
    row = session.exec(
        select(Payment.id, Payment.retry_of_payment_id, other.run_id)
        .join(other, col(other.retry_of_payment_id) == col(Payment.retry_of_payment_id))
        .join(Run, col(other.run_id) == col(Run.id))
        .where(
            Payment.run_id == run.id,
            col(Payment.retry_of_payment_id).is_not(None),
            other.run_id != run.id,
            col(Run.status).not_in(DEAD_RUN_STATUSES),
        )
        .limit(1)
    ).first()
    if row is None:
        return None
    payment_id, retried_id, other_run_id = row
    return (
        f"payment {payment_id} retries payment {retried_id}, which run {other_run_id} retries too; "
        f"reject one of the two runs (payouts reject RUN) so the receipt is paid once"
    )
