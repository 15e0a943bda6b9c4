"""What every command shares: settings and a lazily opened, migrated ledger.

A command owns its unit of work: `cli.session()` is the session of one unit that commits when
the block returns; `cli.units()` is the factory for services that commit steps of their own
(paying, submitting a funding transaction).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import typer

from payouts.cli import errors
from payouts.cli.console import abort
from payouts.cli.failures import fail

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlmodel import Session

    from config.settings import Settings
    from payouts.clock import Clock  # the ledger and settings load when a command runs, not for its --help
    from payouts.ledger.unit_of_work import UnitOfWorkFactory


@dataclass
class CliContext:
    settings: Settings
    _engine: Engine | None = field(default=None, repr=False)
    #: whose time says a period's inputs are complete; the chain's unless one is handed in
    clock: Clock | None = None

    def time(self) -> Clock:
        if self.clock is None:
            # the chain's clock itself, not through the composition root: that one imports the
            # payment side (Stellar SDK, review, export), which `calculate` and `freeze` need none of
            from payouts.stellar.clock import ChainClock

            self.clock = ChainClock(self.settings.horizon_url)
        return self.clock

    def engine(self) -> Engine:
        if self._engine is None:
            from sqlalchemy.exc import OperationalError

            from payouts.ledger.db import LedgerFileError, make_engine, migrate

            if self.settings.strict:
                self._require_existing_ledger()
            try:
                engine = make_engine(self.settings.ledger_url())
            except LedgerFileError as exc:
                abort(f"cannot open the ledger: {exc}")
            try:
                if self.settings.auto_migrate:
                    migrate(engine)
            except OperationalError as exc:
                # the driver's message can quote the URL; show the masked one only
                errors.current.ledger_url = self.settings.ledger_url_for_display()
                fail(exc)
            self._engine = engine
        return self._engine

    def _require_existing_ledger(self) -> None:
        """On the main and test networks a ledger is never created by accident (a typo in a path,
        another working directory): `payouts db init` creates it."""
        where = self.settings.ledger_url_for_display()
        hint = "create it with `payouts db init` (once), or point PAYOUTS_STATE_DIR / PAYOUTS_DATABASE_URL at it"
        from sqlalchemy import inspect
        from sqlalchemy.exc import OperationalError

        from payouts.ledger.db import make_engine

        path = self.settings.sqlite_ledger_path()
        if path is not None:
            if not path.is_file():
                abort(f"no ledger at {path} on the {self.settings.network} network; {hint}", code=2)
            return
        try:
            with make_engine(self.settings.ledger_url()).connect() as connection:
                initialised = inspect(connection).has_table("alembic_version")
        except OperationalError as exc:
            errors.current.ledger_url = where
            fail(exc)
        if not initialised:
            abort(f"the database at {where} holds no ledger on the {self.settings.network} network; {hint}", code=2)

    @contextmanager
    def session(self) -> Iterator[Session]:
        from payouts.ledger.db import session_scope

        with session_scope(self.engine()) as session:
            yield session

    def units(self) -> UnitOfWorkFactory:
        from payouts.ledger.unit_of_work import UnitsOfWork

        return UnitsOfWork(self.engine())


def get_context(ctx: typer.Context) -> CliContext:
    from config.settings import SettingsError, load_settings

    root = ctx.find_root()
    if not isinstance(root.obj, CliContext):
        try:
            root.obj = CliContext(settings=load_settings())
        except SettingsError as exc:
            abort(str(exc), code=2)
    return root.obj
