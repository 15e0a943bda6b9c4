"""Engine, sessions and migrations of the ledger.

SQLite (the embedded default) runs in WAL mode with a busy timeout and serves one worker
process; several worker processes need PostgreSQL.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CursorResult, Engine, Result, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session

from payouts.ledger.unit_of_work import unit_of_work

_MIGRATIONS = str(Path(__file__).with_name("migrations"))
SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            ledger_file = Path(parsed.database)
            ledger_file.parent.mkdir(parents=True, exist_ok=True)
            if not ledger_file.exists():
                # the ledger decides payments: only its owner reads or writes it (SQLite gives
                # its -wal and -shm files the same mode)
                os.close(os.open(ledger_file, os.O_WRONLY | os.O_CREAT, 0o600))
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", _MIGRATIONS)
    config.attributes["engine"] = engine
    return config


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent)."""
    command.upgrade(alembic_config(engine), revision)


def is_current(engine: Engine) -> bool:
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """The session of a new unit of work: commits only if the block returns, rolls back on
    any error (see `payouts.ledger.unit_of_work`)."""
    with unit_of_work(engine) as uow:
        yield uow.session


def rowcount(result: Result[Any]) -> int:
    """Rows an UPDATE or DELETE matched (its result is a cursor result)."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"expected the result of an UPDATE or DELETE, got {type(result).__name__}")
    return result.rowcount


class BackupError(RuntimeError):
    """A backup that could not be taken; the message never holds the database password."""


def backup(url: str, out: Path) -> Path:
    """A consistent copy of the ledger at `out`, readable by its owner only.

    SQLite: the online backup API (a snapshot even while workers write). PostgreSQL: pg_dump's
    custom format (restore with pg_restore), the password passed in the environment, never on
    the command line.
    """
    import shutil
    import sqlite3
    import subprocess

    parsed = make_url(url)
    out = Path(out)
    if out.exists():
        raise BackupError(f"{out} exists; choose a new file (a backup never overwrites one)")
    descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(descriptor)
    try:
        if parsed.get_backend_name() == "sqlite":
            source = sqlite3.connect(f"file:{parsed.database}?mode=ro", uri=True)
            target = sqlite3.connect(out)
            with target:
                source.backup(target)
            source.close()
            target.close()
            return out
        pg_dump = shutil.which("pg_dump") or next(
            (str(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_dump"))), None
        )
        if pg_dump is None:
            raise BackupError("pg_dump is not installed (Debian package postgresql-client)")
        env = dict(os.environ, PGPASSWORD=parsed.password or "")
        command = [
            pg_dump,
            "--format=custom",
            "--file",
            str(out),
            "--host",
            parsed.host or "127.0.0.1",
            "--port",
            str(parsed.port or 5432),
            "--username",
            parsed.username or "postgres",
            parsed.database or "postgres",
        ]
        result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            detail = result.stderr.replace(parsed.password or "\0", "***").strip().splitlines()[-1:] or [""]
            raise BackupError(f"pg_dump failed: {detail[0]}")
        return out
    except BaseException:
        out.unlink(missing_ok=True)
        raise
