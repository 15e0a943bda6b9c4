"""The database fingerprint: which file or database holds the ledger. A copy, or a backup
restored elsewhere, is recognised; `payouts db status` says so."""

from __future__ import annotations

from sqlmodel import Session
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.ledger.db import make_engine
from payouts.ledger.fingerprint import database_fingerprint, fingerprint_difference, record_fingerprint
from tests.runs.test_chain_scan import restored_copy
from tests.runs.test_payer_claim import copied_ledger

runner = CliRunner()


def test_a_copied_or_restored_ledger_has_another_fingerprint_and_db_status_says_so(ledger_url, tmp_path, monkeypatch):
    db = make_engine(ledger_url)
    with Session(db) as session:
        assert fingerprint_difference(session) is None  # never recorded: nothing to differ from
        recorded = record_fingerprint(session, reason="first payer")
        session.commit()
    with Session(db) as session:
        assert fingerprint_difference(session) is None and database_fingerprint(session) == recorded
    monkeypatch.setenv("PAYOUTS_DATABASE_URL", ledger_url)
    result = runner.invoke(app, ["db", "status"])
    assert result.exit_code == 0 and "restored from a backup" not in result.output, result.output

    for other in (restored_copy(ledger_url, tmp_path), copied_ledger(ledger_url, tmp_path, db)):
        with Session(make_engine(other)) as session:
            moved = fingerprint_difference(session)
        assert moved is not None and moved[0] == recorded and moved[1] != recorded
        monkeypatch.setenv("PAYOUTS_DATABASE_URL", other)
        result = runner.invoke(app, ["db", "status"])
        assert result.exit_code == 1, result.output
        assert "restored from a backup or copied" in result.output and "payouts recover" in result.output
