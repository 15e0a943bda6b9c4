"""After a restore, the payments the scan adopted from the chain reconcile clean (SQLite and
PostgreSQL): their transactions have no row in the restored ledger, but the adoption event names
them. Before, reconciliation called them unknown on chain and stopped the run, and every later
run of the same payout account too (the soak's restore event showed it)."""

from __future__ import annotations

from sqlmodel import Session

from payouts.ledger.db import make_engine, session_scope
from payouts.ledger.models import Run
from payouts.ledger.states import RunStatus
from payouts.runs.reconcile import reconcile_run, record_reconciliation
from tests.runs.conftest import paying  # noqa: F401
from tests.runs.test_chain_scan import _restore_then_pay_again


def _reconciled(url: str, run_id: int, engine, document):
    db = make_engine(url)
    with session_scope(db) as session:
        run = session.get(Run, run_id)
        result = reconcile_run(
            session,
            run,
            engine.client,
            document["payout"]["public_key"],
            document["asset"]["code"],
            document["asset"]["issuer"],
        )
        record_reconciliation(session, run, result)
    with Session(db) as session:
        return result, session.get(Run, run_id).status


def _check(paying, tmp_path, ledger_url, **options):  # noqa: F811
    _sandbox, document, run_id, restored = _restore_then_pay_again(paying, tmp_path, ledger_url, **options)
    url = restored.units.engine.url.render_as_string(hide_password=False)
    result, status = _reconciled(url, run_id, restored, document)
    assert result.clean, (result.differences, result.unknown_on_chain)
    assert result.paid_on_chain == result.paid_in_ledger == 8
    assert status == RunStatus.RECONCILED


def test_payments_adopted_after_a_restore_reconcile_clean(paying, tmp_path, ledger_url):  # noqa: F811
    _check(paying, tmp_path, ledger_url)


def test_batches_adopted_after_a_restore_reconcile_clean(paying, tmp_path, ledger_url):  # noqa: F811
    _check(paying, tmp_path, ledger_url, memo_mode="batch", channels=1, batch_size=3)
