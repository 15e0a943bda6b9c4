"""RUNBOOK.md's backup and restore, done as written: `payouts db backup`, lose the ledger,
restore, and the restored ledger holds exactly what was backed up, append-only rule included."""

from __future__ import annotations

import shutil
import stat
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlmodel import Session, func, select
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.ledger.db import is_current, make_engine
from payouts.ledger.models import LedgerEvent, Payment, Receipt, Run
from payouts.runs.service import calculate_run
from payouts.snapshot.load import load_snapshot
from tests import factories

runner = CliRunner()


def _contents(url: str) -> tuple:
    with Session(make_engine(url)) as session:
        return (
            [(r.id, r.status, r.snapshot_sha256, r.total_tft_units) for r in session.exec(select(Run)).all()],
            session.exec(select(func.count()).select_from(Receipt)).one(),
            sorted((p.idempotency_key, p.amount_tft_units, p.status) for p in session.exec(select(Payment)).all()),
            session.exec(select(func.count()).select_from(LedgerEvent)).one(),
        )


def _pg_tool(name: str) -> str:
    return shutil.which(name) or str(max(Path("/usr/lib/postgresql").glob(f"*/bin/{name}")))


def test_backup_and_restore_as_the_runbook_says(ledger_url, tmp_path, monkeypatch):
    with Session(make_engine(ledger_url)) as session:
        document = factories.snapshot(nodes=[factories.node(n) for n in (1, 2, 3)])
        calculate_run(session, load_snapshot(factories.write(tmp_path / "m.json", document)))
        session.commit()
    before = _contents(ledger_url)
    monkeypatch.setenv("PAYOUTS_DATABASE_URL", ledger_url)
    backup_file = tmp_path / "ledger.backup"
    result = runner.invoke(app, ["db", "backup", "--out", str(backup_file)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(backup_file.stat().st_mode) == 0o600
    again = runner.invoke(app, ["db", "backup", "--out", str(backup_file)])
    assert again.exit_code == 1 and "exists" in again.output  # a backup never overwrites one

    parsed = make_url(ledger_url)
    if parsed.get_backend_name() == "sqlite":
        # the disaster: the ledger file is gone; restore = copy the backup into its place
        Path(parsed.database).unlink()
        shutil.copyfile(backup_file, parsed.database)
        restored_url = ledger_url
    else:
        # restore into a new database with pg_restore, then point PAYOUTS_DATABASE_URL at it
        name = f"restored_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(
            f"host=127.0.0.1 port={parsed.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        subprocess.run(
            [
                _pg_tool("pg_restore"),
                "--no-owner",
                "--host",
                "127.0.0.1",
                "--port",
                str(parsed.port),
                "--username",
                "postgres",
                "--dbname",
                name,
                str(backup_file),
            ],
            check=True,
        )
        restored_url = ledger_url.rsplit("/", 1)[0] + f"/{name}"
    assert _contents(restored_url) == before
    engine = make_engine(restored_url)
    assert is_current(engine)
    with pytest.raises(Exception, match="append-only"), engine.begin() as connection:
        connection.execute(text("DELETE FROM event_history"))
    assert _contents(restored_url) == before
