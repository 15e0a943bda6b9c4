"""The unit of work: commits when its block returns, rolls back on an error, and runs what was
registered with `after_commit` only once the commit succeeded."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from payouts.ledger.models import Control
from payouts.ledger.types import utcnow
from payouts.ledger.unit_of_work import UnitsOfWork, unit_of_work


def _controls(engine) -> list[str]:
    """What another connection sees: only committed rows."""
    with Session(engine) as session:
        return [c.name for c in session.exec(select(Control)).all()]


def _control(name: str) -> Control:
    return Control(name=name, value="on", reason="test", updated_at=utcnow())


def test_after_commit_work_runs_once_the_change_is_committed(engine):
    seen: list[list[str]] = []
    with unit_of_work(engine) as uow:
        uow.session.add(_control("a"))
        uow.after_commit(lambda: seen.append(_controls(engine)))
        uow.session.flush()
        assert seen == []  # not while the unit is open
    # it ran after the commit: another connection saw the row at that moment
    assert seen == [["a"]]


def test_nothing_is_dispatched_when_the_unit_of_work_rolls_back(engine):
    dispatched: list[str] = []
    with pytest.raises(RuntimeError, match="boom"), unit_of_work(engine) as uow:
        uow.session.add(_control("a"))
        uow.after_commit(lambda: dispatched.append("follow-up"))
        uow.session.flush()
        raise RuntimeError("boom")
    assert dispatched == [] and _controls(engine) == []


def test_nothing_is_dispatched_when_the_commit_itself_fails(engine):
    with unit_of_work(engine) as uow:
        uow.session.add(_control("a"))
    dispatched: list[str] = []
    with pytest.raises(IntegrityError), unit_of_work(engine) as uow:
        uow.session.add(_control("b"))
        uow.session.add(_control("a"))  # the same primary key: refused at commit
        uow.after_commit(lambda: dispatched.append("follow-up"))
    assert dispatched == [] and _controls(engine) == ["a"]


def test_every_dispatch_is_tried_and_the_first_failure_is_raised(engine):
    dispatched: list[str] = []

    def broker_down() -> None:
        raise ConnectionError("broker unreachable")

    with pytest.raises(ConnectionError), unit_of_work(engine) as uow:
        uow.session.add(_control("a"))
        uow.after_commit(broker_down)
        uow.after_commit(lambda: dispatched.append("second"))
    assert dispatched == ["second"] and _controls(engine) == ["a"]  # committed all the same


def test_commit_before_submit_puts_the_change_on_record_while_the_unit_goes_on(engine):
    units = UnitsOfWork(engine)
    dispatched: list[str] = []
    with pytest.raises(RuntimeError), units() as uow:
        uow.session.add(_control("built"))
        uow.after_commit(lambda: dispatched.append("after the named commit"))
        uow.commit_before_submit()
        assert _controls(engine) == ["built"] and dispatched == ["after the named commit"]
        uow.session.add(_control("after"))
        raise RuntimeError("the send failed")
    # what was committed before the send stays; what came after rolled back
    assert _controls(engine) == ["built"] and dispatched == ["after the named commit"]
