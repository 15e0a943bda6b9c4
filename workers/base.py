"""PayoutTask: a task owns one unit of work, commits only when it returns, then dispatches.

The unit of work is the task's first argument. What the task queues next is registered with
`uow.after_commit` and sent only once the commit succeeded: a task that fails, retries or rolls
back queues nothing. `self.units` is the factory for services that commit steps of their own
(the payment engine, the monthly job's moves).
"""

from __future__ import annotations

from typing import Any

from celery import Task
from sqlalchemy import Engine

from payouts.ledger.db import make_engine, migrate
from payouts.ledger.errors import AlreadyDone
from payouts.ledger.unit_of_work import UnitOfWorkFactory, UnitsOfWork, unit_of_work


class PayoutTask(Task):
    abstract = True
    #: the unit of work is injected by __call__, so the signature check would count it missing
    typing = False
    _engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if PayoutTask._engine is None:
            settings = self.app.conf.payouts_settings
            engine = make_engine(settings.ledger_url())
            if settings.auto_migrate:
                migrate(engine)
            PayoutTask._engine = engine
        return PayoutTask._engine

    @property
    def units(self) -> UnitOfWorkFactory:
        return UnitsOfWork(self.engine)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            with unit_of_work(self.engine) as uow:
                return self.run(uow, *args, **kwargs)
        except AlreadyDone as done:
            # "already done" is success: a redelivered or doubled task changes nothing
            return {"already_done": str(done)}
