"""`payouts recover` behind a lagging Horizon on a network that closes ledgers faster than the
public ones: the claim's ledger bound counts in the network's own ledgers, so a Horizon a few
ledgers behind does not make every claim too late before it is sent."""

from __future__ import annotations

import dataclasses
from collections import Counter

from sqlmodel import Session, select

from config.settings import Settings
from payouts.ledger.db import make_engine
from payouts.ledger.models import LedgerEvent
from payouts.ledger.states import RunStatus
from payouts.ledger.unit_of_work import UnitsOfWork
from payouts.runs.payment import PaymentEngine
from payouts.wiring import pay_config
from tests.runs.test_chain_scan import restored_copy
from tests.runs.test_payer_claim import paid_receipts, receipts_paid_on_chain

#: the transaction timeout: 60 ledgers of the sandbox's 0.1 s, 2 of 5 s
TIMEOUT_S = 6
#: Horizon this far behind the network: 20 of the sandbox's ledgers
LAG_S = 2.0


def test_recover_behind_a_lagging_horizon_takes_the_claim_over_and_pays_each_receipt_once(paying, tmp_path, ledger_url):
    sandbox, document, _db, run_id, engine = paying(channels=1, tx_timeout_s=TIMEOUT_S)
    sandbox.wait_for_ledger(50)  # 5 s of ledgers: enough for Horizon's close times to tell
    settings = Settings(network="dev", horizon_url=sandbox.url, stellar_accounts_file=tmp_path / "accounts.json")
    close_s = pay_config(settings, "dev").ledger_close_s
    engine.config = config = dataclasses.replace(engine.config, ledger_close_s=close_s)

    before_pay = restored_copy(ledger_url, tmp_path)  # the backup, taken before the claim
    first = engine.pay(run_id, budget_s=0)  # the claim, and one batch sent
    assert first.status == RunStatus.PAYING and first.transactions >= 1

    # the backup restored while Horizon's replica is behind the network; `payouts recover`
    sandbox.view.set_lag(LAG_S)
    restored_db = make_engine(before_pay)
    restored = PaymentEngine(UnitsOfWork(restored_db), engine.client, engine.keys, config)
    _status, scan = restored.recover(run_id)
    assert not scan.problems and scan.adopted_payments == first.paid
    with Session(restored_db) as session:
        assert session.exec(select(LedgerEvent).where(LedgerEvent.event == "claim.taken_over")).all()

    sandbox.view.set_lag(0.0)
    assert restored.pay(run_id).status == RunStatus.PAID
    payable = paid_receipts(restored_db, run_id)
    assert len(payable) == 8
    assert receipts_paid_on_chain(engine.client, document) == Counter(dict.fromkeys(payable, 1))
    assert 0.05 <= close_s <= 0.2  # the sandbox's 0.1 s, measured to Horizon's whole seconds
