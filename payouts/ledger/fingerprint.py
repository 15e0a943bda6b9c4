"""Which database holds this ledger: a fingerprint recorded in the ledger, so a ledger that was
restored from a backup or copied is recognised (it names another database than the one it was
recorded in) and pays only after `payouts recover` has taken the period's claim over on chain.

- SQLite: the file's device and inode and its resolved path. A copy is another file (another
  inode, usually another path); a backup copied into place is a new file.
- PostgreSQL: the cluster's `system_identifier` (pg_control_system(): every cluster initdb
  makes has its own) and the database's oid (a database restored with pg_restore, or made from
  another as a template, is a new database with a new oid).
"""

from __future__ import annotations

import os

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from payouts.ledger.events import record_event
from payouts.ledger.identity import ledger_identity


def database_fingerprint(session: Session) -> str:
    """The fingerprint of the database this session is connected to."""
    bind = session.get_bind()
    url = bind.engine.url
    if url.get_backend_name() == "sqlite":
        path = url.database or ""
        if not path or path == ":memory:":
            return "sqlite:memory"
        real = os.path.realpath(path)
        info = os.stat(real)
        return f"sqlite:{info.st_dev}:{info.st_ino}:{real}"[:200]
    oid = session.execute(text("SELECT oid FROM pg_database WHERE datname = current_database()")).scalar_one()
    try:
        with session.begin_nested():
            system = session.execute(text("SELECT system_identifier FROM pg_control_system()")).scalar_one()
    except DBAPIError:
        system = "unreadable"  # a role without pg_monitor: the oid still tells databases apart
    return f"postgresql:{system}:{oid}"


def fingerprint_difference(session: Session) -> tuple[str, str] | None:
    """(recorded, current) when the ledger was recorded in another database; None when it was
    recorded here or never recorded."""
    recorded = ledger_identity(session).database_fingerprint
    if recorded is None:
        return None
    current = database_fingerprint(session)
    return None if recorded == current else (recorded, current)


def record_fingerprint(session: Session, *, reason: str) -> str:
    """Record the current database as this ledger's own (the first payer, or `payouts recover`
    after it took the claim over). Writes through the caller's session."""
    identity = ledger_identity(session)
    current = database_fingerprint(session)
    if identity.database_fingerprint != current:
        previous = identity.database_fingerprint
        identity.database_fingerprint = current
        session.add(identity)
        session.flush()
        record_event(
            session,
            entity="ledger_identity",
            entity_id=identity.id,
            event="ledger.fingerprint.recorded",
            detail={"fingerprint": current, "previous": previous, "reason": reason},
        )
    return current
