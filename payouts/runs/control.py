"""Operator controls over the workers: the pause switch and run leases.

Pause is a global kill switch, not a run state (SPEC 7): while it is on, no new transaction is
built or sent; transactions already in flight are still resolved, so nothing is left unknown.
A lease lets one worker at a time drive a run's payments; a worker that dies stops renewing it,
and the lease lapses so that the redelivered task (or the next trigger) takes over. A renewal
takes effect only for the lease's holder: a payer that stalled past its lease and was taken over
learns so at its next renewal and stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import or_, select, update
from sqlmodel import Session, col

from payouts.ledger.db import rowcount
from payouts.ledger.events import record_event
from payouts.ledger.models import Control, Run
from payouts.ledger.types import utcnow

log = structlog.get_logger(__name__)

PAUSED = "paused"


@dataclass(frozen=True)
class PauseState:
    paused: bool
    reason: str = ""
    since: datetime | None = None


def pause_state(session: Session) -> PauseState:
    control = session.get(Control, PAUSED)
    if control is None or control.value != "on":
        return PauseState(False)
    return PauseState(True, control.reason, control.updated_at)


def set_paused(session: Session, paused: bool, reason: str = "") -> bool:
    """Turn the switch on or off; returns whether it changed. Every change is in the history."""
    if paused and not reason.strip():
        raise ValueError("pausing needs a reason (it is shown to every operator and in the logs)")
    now = utcnow()
    control = session.get(Control, PAUSED)
    was_paused = control is not None and control.value == "on"
    if was_paused == paused:
        return False
    if control is None:
        control = Control(name=PAUSED, value="off", reason="", updated_at=now)
        session.add(control)
    control.value = "on" if paused else "off"
    control.reason = reason if paused else ""
    control.updated_at = now
    record_event(
        session,
        entity="controls",
        entity_id=None,
        run_id=None,
        event="control.paused" if paused else "control.resumed",
        detail={"reason": reason},
    )
    log.warning("payouts.paused" if paused else "payouts.resumed", reason=reason)
    return True


def acquire_lease(session: Session, run_id: int, owner: str, ttl_s: float) -> bool:
    """Take or renew the run's lease for `owner`; False while another live owner holds it."""
    now = utcnow()
    result = session.execute(
        update(Run)
        .where(
            col(Run.id) == run_id,
            or_(
                col(Run.lease_owner).is_(None),
                col(Run.lease_owner) == owner,
                col(Run.lease_expires_at).is_(None),
                col(Run.lease_expires_at) < now,
            ),
        )
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=ttl_s))
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


def renew_lease(session: Session, run_id: int, owner: str, ttl_s: float) -> bool:
    """Extend the run's lease only while `owner` still holds it; False when it was taken over
    (a payer that lost its lease must stop: another payer drives the run now)."""
    result = session.execute(
        update(Run)
        .where(col(Run.id) == run_id, col(Run.lease_owner) == owner)
        .values(lease_expires_at=utcnow() + timedelta(seconds=ttl_s))
        .execution_options(synchronize_session=False)
    )
    return rowcount(result) == 1


def lease_holder(session: Session, run_id: int) -> str | None:
    """Who holds the run's lease now (read past this session's cache)."""
    row = session.execute(select(col(Run.lease_owner)).where(col(Run.id) == run_id)).first()
    return row[0] if row is not None else None


def release_lease(session: Session, run_id: int, owner: str) -> None:
    session.execute(
        update(Run)
        .where(col(Run.id) == run_id, col(Run.lease_owner) == owner)
        .values(lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False)
    )
