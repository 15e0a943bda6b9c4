"""What every command shares: settings and a lazily opened, migrated ledger.

A command owns its unit of work: `cli.session()` is the session of one unit that commits when
the block returns; `cli.units()` is the factory for services that commit steps of their own
(paying, submitting a funding transaction).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import typer
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from config.settings import Settings, load_settings
from payouts.cli.console import abort
from payouts.ledger.db import LedgerFileError, make_engine, migrate, session_scope
from payouts.ledger.unit_of_work import UnitOfWorkFactory, UnitsOfWork


@dataclass
class CliContext:
    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)

    def engine(self) -> Engine:
        if self._engine is None:
            try:
                engine = make_engine(self.settings.ledger_url())
                if self.settings.auto_migrate:
                    migrate(engine)
            except OperationalError as exc:
                # the driver's message can quote the URL; show the masked one only
                abort(f"cannot open the ledger at {self.settings.ledger_url_for_display()}: {type(exc.orig).__name__}")
            except LedgerFileError as exc:
                abort(f"cannot open the ledger: {exc}")
            self._engine = engine
        return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.engine()) as session:
            yield session

    def units(self) -> UnitOfWorkFactory:
        return UnitsOfWork(self.engine())


def get_context(ctx: typer.Context) -> CliContext:
    root = ctx.find_root()
    if not isinstance(root.obj, CliContext):
        root.obj = CliContext(settings=load_settings())
    return root.obj
