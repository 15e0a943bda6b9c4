"""The unit of work: one ledger transaction, owned by whoever opened it.

A task or a CLI command opens it; services take it (or its session) and never commit it. It
commits when the owner's block returns and rolls back on any error. Work that must only happen
once the ledger holds the change (queueing a follow-up task, an alert webhook) is registered
with `after_commit`: it runs after the commit succeeded, and never after a rollback.

A service that must commit before a byte leaves the process (SPEC 5: a transaction is on record
as `submitted` before it is sent) takes a `UnitOfWorkFactory` instead, opens units of its own,
and commits with the named step `commit_before_submit()`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session

#: what a service that commits its own steps takes: `with units() as uow: ...`
UnitOfWorkFactory = Callable[[], AbstractContextManager["UnitOfWork"]]


class UnitOfWork:
    """One ledger transaction: `session` to read and write, `after_commit` for what follows."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._after_commit: list[Callable[[], object]] = []

    def after_commit(self, dispatch: Callable[[], object]) -> None:
        """Run `dispatch` once this unit's changes are committed; dropped if it rolls back."""
        self._after_commit.append(dispatch)

    def commit_before_submit(self) -> None:
        """Commit now, so that what this unit wrote (a transaction's signed envelope, marked
        `submitted`) is on record before anything of it is sent. Only a service that opened
        the unit from a `UnitOfWorkFactory` calls this; the unit carries on afterwards."""
        self._commit()

    def _commit(self) -> None:
        self.session.commit()
        dispatches, self._after_commit = self._after_commit, []
        failure: BaseException | None = None
        for dispatch in dispatches:  # every one is tried: one failing does not drop the others
            try:
                dispatch()
            except Exception as exc:  # noqa: BLE001 - re-raised below, once all were tried
                failure = failure or exc
        if failure is not None:
            raise failure

    def _rollback(self) -> None:
        self._after_commit.clear()
        self.session.rollback()


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[UnitOfWork]:
    """Open a unit of work: commits if the block returns (then runs its after-commit work),
    rolls back on any error (and runs none of it)."""
    with Session(engine, expire_on_commit=False) as session:
        uow = UnitOfWork(session)
        try:
            yield uow
        except BaseException:
            uow._rollback()
            raise
        uow._commit()


@dataclass(frozen=True)
class UnitsOfWork:
    """A `UnitOfWorkFactory` on one engine: `UnitsOfWork(engine)()` opens a unit of work."""

    engine: Engine

    def __call__(self) -> AbstractContextManager[UnitOfWork]:
        return unit_of_work(self.engine)
