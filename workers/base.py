"""PayoutTask: owns one ledger session per task, commits only when the task returns."""

from __future__ import annotations

from celery import Task
from sqlalchemy import Engine

from payouts.ledger.db import make_engine, migrate, session_scope
from payouts.ledger.errors import AlreadyDone


class PayoutTask(Task):
    abstract = True
    #: the session is injected by __call__, so the signature check would count it as missing
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

    def __call__(self, *args, **kwargs):
        try:
            with session_scope(self.engine) as session:
                return self.run(session, *args, **kwargs)
        except AlreadyDone as done:
            # "already done" is success: a redelivered or doubled task changes nothing
            return {"already_done": str(done)}
