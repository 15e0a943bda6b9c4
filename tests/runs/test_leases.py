"""A payer whose lease was taken over stops cleanly, with a message (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, col

from payouts.ledger.db import session_scope
from payouts.ledger.models import Run
from payouts.ledger.types import utcnow
from payouts.runs.control import acquire_lease, renew_lease
from payouts.runs.payment import LeaseLost, RunBusy
from payouts.runs.service import calculate_run
from payouts.snapshot.load import load_snapshot
from tests import factories
from tests.support.payments import check_invariants


def _take_over(db, run_id: int, owner: str = "other-host:1:takeover") -> None:
    with session_scope(db) as session:
        session.execute(
            update(Run)
            .where(col(Run.id) == run_id)
            .values(lease_owner=owner, lease_expires_at=utcnow() + timedelta(seconds=600))
        )


def test_a_renewal_takes_effect_only_for_the_holder(engine, tmp_path):
    with session_scope(engine) as session:
        snapshot = load_snapshot(factories.write(tmp_path / "s.json", factories.snapshot()))
        run_id = calculate_run(session, snapshot).run.id
    with Session(engine) as session:
        assert acquire_lease(session, run_id, "a", 60) and renew_lease(session, run_id, "a", 60)
        session.commit()
        assert not acquire_lease(session, run_id, "b", 60)
        # a lapsed lease taken by b: a's renewal does not take effect
        session.execute(update(Run).where(col(Run.id) == run_id).values(lease_expires_at=utcnow()))
        assert acquire_lease(session, run_id, "b", 60)
        assert not renew_lease(session, run_id, "a", 60)
        assert session.get(Run, run_id).lease_owner == "b"


def test_a_payer_that_lost_its_lease_at_renewal_stops_with_a_message(paying):
    _sandbox, document, db, run_id, engine = paying(lease_ttl_s=0.3)
    calls = []

    def stall_and_lose(_report) -> None:
        if not calls:
            _take_over(db, run_id)
        calls.append(1)

    with pytest.raises(LeaseLost, match="lost its lease") as caught:
        engine.pay(run_id, progress=stall_and_lose)
    assert isinstance(caught.value, RunBusy)  # a worker retries later, as for a busy run
    assert "other-host:1:takeover drives the run now" in str(caught.value)
    with Session(db) as session:
        assert session.get(Run, run_id).lease_owner == "other-host:1:takeover"  # not released by the loser
    # the new holder finishes: nothing paid twice, nothing lost
    with session_scope(db) as session:
        session.execute(update(Run).where(col(Run.id) == run_id).values(lease_owner=None, lease_expires_at=None))
    assert engine.pay(run_id).status == "paid"
    check_invariants(db, engine.client, document, run_id)
