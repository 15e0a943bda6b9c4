"""Fixtures of the runs tests: a sandbox with accounts, an approved run and a payment engine."""

from __future__ import annotations

import pytest
from stellar_sdk import Keypair

from payouts.ledger.db import make_engine, session_scope
from payouts.ledger.models import Run
from payouts.ledger.unit_of_work import UnitsOfWork
from payouts.runs.approvals import approve_run, build_manifest, sign_manifest
from payouts.runs.payment import PayConfig, PaymentEngine
from payouts.runs.service import calculate_run
from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import init_sandbox
from payouts.sandbox.faults import FaultSpec
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.keys import SigningKeys
from tests.support.payments import fund_payout as _fund_payout
from tests.support.payments import grid_snapshot as _snapshot


@pytest.fixture
def paying(ledger_url, tmp_path):
    """A sandbox with accounts, a calculated and approved run, and a payment engine."""

    def make(
        *,
        faults: str | None = None,
        channels: int = 3,
        fund: bool = True,
        memo_mode="per_receipt",
        approve: bool = True,
        **config_overrides,
    ):
        sandbox_cm = running_sandbox(ledger_close_s=0.1, seed=11, submission_timeout_s=2)
        sandbox = sandbox_cm.__enter__()
        request_cleanup.append(sandbox_cm)
        document = init_sandbox(
            sandbox.url, tmp_path / "accounts.json", farmers=5, without_trustline=1, channels=channels
        ).document
        db = make_engine(ledger_url)
        with session_scope(db) as session:
            run = calculate_run(session, _snapshot(tmp_path, document["farmers"])).run
        approver = Keypair.random()
        config = PayConfig(
            network_passphrase=document["network_passphrase"],
            asset_code=document["asset"]["code"],
            asset_issuer=document["asset"]["issuer"],
            approvers=(approver.public_key,),
            approvals_required=1,
            memo_mode=memo_mode,
            poll_interval_s=0.1,
            **{"tx_timeout_s": 30, **config_overrides},
        )
        if approve:
            with session_scope(db) as session:
                run_row = session.get(Run, run.id)
                approve_run(
                    session,
                    run_row,
                    public_key=approver.public_key,
                    signature_b64=sign_manifest(build_manifest(session, run_row), approver),
                    approvers=[approver.public_key],
                    required=1,
                )
        client = HorizonClient(sandbox.url, timeout_s=10)
        if fund:
            _fund_payout(client, document, 10**6 * 10**7)
        keys = SigningKeys.from_accounts_file(tmp_path / "accounts.json")
        sandbox.faults.spec = FaultSpec.parse(faults)  # faults only once the accounts exist
        return sandbox, document, db, run.id, PaymentEngine(UnitsOfWork(db), client, keys, config)

    request_cleanup: list = []
    yield make
    for cm in request_cleanup:
        cm.__exit__(None, None, None)
