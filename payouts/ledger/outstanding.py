"""What is still owed: one entry per owed receipt, derived from the payments, never stored.

A payment held in one run is retried by a later run (`Payment.retry_of_payment_id`), and a
retry held in turn is retried again: original -> retry -> retry of the retry, one chain per
owed receipt. Only the chain's newest entry in a live run (not replaced or rejected) says where
the money stands: held, pending in a run, or paid. A paid newest entry settles the whole chain
(a November original retried in December and paid by January's retry is settled); an older
entry is "retried by" the run that carries the next entry, and owes nothing of its own.

`payouts held`, `payouts status`, the export and its farm summary, and the status site all
count what is owed from here, so each owed receipt counts once everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from sqlalchemy import select
from sqlmodel import Session, col

from payouts.ledger.models import Payment, Run
from payouts.ledger.states import HELD_PAYMENT_STATUSES, LIVE_RUN_STATUSES, OWED_PAYMENT_STATUSES, PaymentStatus

#: a newest entry in one of these states is owed to the farmer and not paid yet
OWED_STATUSES = tuple(s for s in PaymentStatus if s in OWED_PAYMENT_STATUSES)
#: a newest entry in one of these cannot be paid until the farmer fixes something
HELD_STATUSES = tuple(s for s in PaymentStatus if s in HELD_PAYMENT_STATUSES)


@dataclass(frozen=True)
class _Member:
    payment_id: int
    parent_id: int | None
    run_id: int
    period_offset: int
    live: bool
    status: str


@dataclass(frozen=True)
class RetriedBy:
    """An entry a newer live entry of its chain supersedes: it owes nothing of its own."""

    payment_id: int
    #: the next live entry of the chain, and the run (period) that carries it
    next_payment_id: int
    next_run_id: int
    next_period_offset: int
    #: the chain's newest live entry: its status says whether the chain is settled
    newest_payment_id: int
    newest_run_id: int
    newest_period_offset: int
    newest_status: str

    @property
    def settled(self) -> bool:
        return self.newest_status == PaymentStatus.PAID


@dataclass(frozen=True)
class Chains:
    """The retry chains of the ledger: which entries are superseded, and each entry's root."""

    retried_by: dict[int, RetriedBy]
    #: payment id -> the chain's first payment (only for payments that are part of a chain)
    root_of: dict[int, int]
    #: payment id -> how many retries came before it (0 for an original)
    depth_of: dict[int, int]

    def is_superseded(self, payment_id: int) -> bool:
        return payment_id in self.retried_by

    def root(self, payment_id: int) -> int:
        return self.root_of.get(payment_id, payment_id)

    def retries(self, payment_id: int) -> int:
        return self.depth_of.get(payment_id, 0)


def retry_chains(session: Session) -> Chains:
    """Every chain with at least one retry, read in two queries (retries are few: only held
    payments are retried, so memory follows the number of retries, not of payments)."""
    members: dict[int, _Member] = {}

    def read(where) -> None:
        rows = session.execute(
            select(
                col(Payment.id),
                col(Payment.retry_of_payment_id),
                col(Payment.run_id),
                col(Run.period_offset),
                col(Run.status),
                col(Payment.status),
            )
            .join(Run, col(Run.id) == col(Payment.run_id))
            .where(where)
        ).all()
        for payment_id, parent_id, run_id, period_offset, run_status, status in rows:
            members[payment_id] = _Member(
                payment_id, parent_id, run_id, period_offset, run_status in LIVE_RUN_STATUSES, status
            )

    read(col(Payment.retry_of_payment_id).is_not(None))
    while missing := {m.parent_id for m in members.values() if m.parent_id is not None} - members.keys():
        read(col(Payment.id).in_(sorted(missing)))

    root_of: dict[int, int] = {}
    depth_of: dict[int, int] = {}
    for member in members.values():
        depth, current = 0, member
        while current.parent_id is not None and current.parent_id in members:
            depth += 1
            current = members[current.parent_id]
        root_of[member.payment_id] = current.payment_id
        depth_of[member.payment_id] = depth

    chains: dict[int, list[_Member]] = {}
    for member in members.values():
        if member.live:
            chains.setdefault(root_of[member.payment_id], []).append(member)
    retried_by: dict[int, RetriedBy] = {}
    for live in chains.values():
        # a retry is always written after what it retries: ids order a chain
        live.sort(key=lambda m: m.payment_id)
        newest = live[-1]
        for older, following in pairwise(live):
            retried_by[older.payment_id] = RetriedBy(
                payment_id=older.payment_id,
                next_payment_id=following.payment_id,
                next_run_id=following.run_id,
                next_period_offset=following.period_offset,
                newest_payment_id=newest.payment_id,
                newest_run_id=newest.run_id,
                newest_period_offset=newest.period_offset,
                newest_status=newest.status,
            )
    return Chains(retried_by=retried_by, root_of=root_of, depth_of=depth_of)


def owed_units(chains: Chains, payment_id: int, status: str, amount_tft_units: int, run_live: bool) -> int:
    """What one payment adds to what is owed: its amount when it is the newest live entry of
    its chain and not paid yet, else 0."""
    if not run_live or chains.is_superseded(payment_id) or status not in OWED_STATUSES:
        return 0
    return amount_tft_units


@dataclass(frozen=True)
class Outstanding:
    """One owed receipt: where its chain stands now. Amounts in TFT units (10^-7 TFT)."""

    #: the owed receipt: the chain's first payment, its receipt hash and the period it was earned in
    root_payment_id: int
    receipt_hash: str
    kind: str
    earned_run_id: int
    earned_period_offset: int
    farm_id: int
    node_id: int | None
    #: the chain's newest live entry, which carries the debt
    payment_id: int
    run_id: int
    period_offset: int
    status: str
    hold_reason: str
    destination: str
    amount_tft_units: int
    retries: int

    @property
    def is_held(self) -> bool:
        return self.status in HELD_STATUSES


def outstanding(session: Session, *, farm_id: int | None = None, chains: Chains | None = None) -> list[Outstanding]:
    """Every owed receipt, one entry each, ordered by farm, then the period it was earned in."""
    chains = chains if chains is not None else retry_chains(session)
    statement = (
        select(Payment, Run)
        .join(Run, col(Run.id) == col(Payment.run_id))
        .where(col(Run.status).in_(LIVE_RUN_STATUSES), col(Payment.status).in_([s.value for s in OWED_STATUSES]))
        .order_by(col(Payment.farm_id), col(Payment.id))
    )
    if farm_id is not None:
        statement = statement.where(col(Payment.farm_id) == farm_id)
    newest = [(p, r) for p, r in session.execute(statement).all() if not chains.is_superseded(p.id or 0)]
    roots = _roots(session, {chains.root(p.id or 0) for p, _ in newest if chains.root(p.id or 0) != p.id})
    entries = []
    for payment, run in newest:
        root_payment, root_run = roots.get(chains.root(payment.id or 0), (payment, run))
        entries.append(
            Outstanding(
                root_payment_id=root_payment.id or 0,
                receipt_hash=root_payment.receipt_hash,
                kind=root_payment.kind,
                earned_run_id=root_run.id or 0,
                earned_period_offset=root_run.period_offset,
                farm_id=payment.farm_id,
                node_id=payment.node_id,
                payment_id=payment.id or 0,
                run_id=run.id or 0,
                period_offset=run.period_offset,
                status=payment.status,
                hold_reason=payment.hold_reason,
                destination=payment.destination,
                amount_tft_units=payment.amount_tft_units,
                retries=chains.retries(payment.id or 0),
            )
        )
    entries.sort(key=lambda e: (e.farm_id, e.earned_period_offset, e.node_id or 0, e.root_payment_id))
    return entries


def _roots(session: Session, ids: Iterable[int]) -> dict[int, tuple[Payment, Run]]:
    wanted = sorted(ids)
    if not wanted:
        return {}
    rows = session.execute(
        select(Payment, Run).join(Run, col(Run.id) == col(Payment.run_id)).where(col(Payment.id).in_(wanted))
    ).all()
    return {payment.id or 0: (payment, run) for payment, run in rows}


def settled_by_retries(session: Session, paid_payment_ids: Iterable[int]) -> list[int]:
    """The held payments that the just-paid retries among `paid_payment_ids` settle: every
    earlier entry of their chains still held (a retry of a retry settles the original too)."""
    parents = [
        parent
        for parent in session.execute(
            select(col(Payment.retry_of_payment_id)).where(
                col(Payment.id).in_(list(paid_payment_ids)), col(Payment.retry_of_payment_id).is_not(None)
            )
        ).scalars()
        if parent is not None
    ]
    held: list[int] = []
    seen: set[int] = set()
    while parents:
        rows = session.execute(
            select(col(Payment.id), col(Payment.status), col(Payment.retry_of_payment_id)).where(
                col(Payment.id).in_(parents)
            )
        ).all()
        parents = []
        for payment_id, status, parent in rows:
            if payment_id in seen:
                continue
            seen.add(payment_id)
            if status == PaymentStatus.HELD:
                held.append(payment_id)
            if parent is not None:
                parents.append(parent)
    return sorted(held)


@dataclass(frozen=True)
class WaitingToBeClaimed:
    """A payment sent as a claimable balance the farmer has not claimed yet: paid out, owed
    nothing, settled once claimed (owed again if the payout account takes it back)."""

    payment_id: int
    run_id: int
    period_offset: int
    farm_id: int
    node_id: int | None
    destination: str
    amount_tft_units: int
    balance_id: str
    claimable_until: datetime | None


def waiting_to_be_claimed(session: Session, *, farm_id: int | None = None) -> list[WaitingToBeClaimed]:
    statement = (
        select(Payment, Run)
        .join(Run, col(Run.id) == col(Payment.run_id))
        .where(col(Run.status).in_(LIVE_RUN_STATUSES), col(Payment.status) == PaymentStatus.CLAIMABLE)
        .order_by(col(Payment.farm_id), col(Payment.id))
    )
    if farm_id is not None:
        statement = statement.where(col(Payment.farm_id) == farm_id)
    return [
        WaitingToBeClaimed(
            payment_id=payment.id or 0,
            run_id=run.id or 0,
            period_offset=run.period_offset,
            farm_id=payment.farm_id,
            node_id=payment.node_id,
            destination=payment.destination,
            amount_tft_units=payment.amount_tft_units,
            balance_id=payment.claimable_balance_id or "",
            claimable_until=payment.claimable_until,
        )
        for payment, run in session.execute(statement).all()
    ]
