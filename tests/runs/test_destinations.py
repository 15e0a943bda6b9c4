"""Destinations that cannot really receive are held with their reason; preflight reserves count
every subentry; reconciliation counts each chain operation once. SQLite and PostgreSQL."""

from __future__ import annotations

import base64
from collections import Counter

import httpx
import orjson
import pytest
from sqlmodel import Session, select
from stellar_sdk import Keypair

from payouts.ledger.db import make_engine, session_scope
from payouts.ledger.models import Payment, Run
from payouts.ledger.states import RunStatus
from payouts.ledger.unit_of_work import UnitsOfWork
from payouts.runs.approvals import approve_run, build_manifest, sign_manifest
from payouts.runs.payment import PayConfig, PaymentEngine
from payouts.runs.reconcile import reconcile_run
from payouts.runs.service import calculate_run
from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import init_sandbox
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.keys import SigningKeys
from payouts.stellar.preflight import Asset, PreflightError, check_destinations, check_payout_account
from tests.support.payments import chain_payments, check_invariants, fund_payout, grid_snapshot

ISSUER = Keypair.random().public_key
TFT = Asset("TFT", ISSUER)


def _account(account_id: str, *, native: str = "100.0000000", data=None, signers=None, lines=1, subentries=None):
    """An account document in Horizon's shape (reference/horizon-api-shapes.md)."""
    balances = [{"asset_type": "native", "balance": native}]
    for n in range(lines):
        issuer = ISSUER if n == 0 else Keypair.random().public_key
        balances.append(
            {
                "asset_type": "credit_alphanum4",
                "asset_code": "TFT",
                "asset_issuer": issuer,
                "balance": "1000.0000000",
                "limit": "922337203685.4775807",
                "is_authorized": True,
            }
        )
    document = {
        "id": account_id,
        "account_id": account_id,
        "sequence": "100",
        "balances": balances,
        "thresholds": {"low_threshold": 0, "med_threshold": 0, "high_threshold": 0},
        "signers": [{"key": account_id, "weight": 1, "type": "ed25519_public_key"}, *(signers or [])],
        "data": data or {},
    }
    if subentries is not None:
        document["subentry_count"] = subentries
    return document


def _horizon(accounts: dict[str, dict]) -> HorizonClient:
    """Horizon answering account reads from documents (the external API, not our code)."""

    def handle(request: httpx.Request) -> httpx.Response:
        account_id = request.url.path.rsplit("/", 1)[-1]
        if account_id in accounts:
            return httpx.Response(200, content=orjson.dumps(accounts[account_id]))
        return httpx.Response(404, json={"status": 404})

    return HorizonClient("http://horizon.test", transport=httpx.MockTransport(handle))


def test_an_account_that_requires_a_memo_is_held():
    exchange, farmer, zero = (Keypair.random().public_key for _ in range(3))
    client = _horizon(
        {
            exchange: _account(exchange, data={"config.memo_required": base64.b64encode(b"1").decode()}),
            zero: _account(zero, data={"config.memo_required": base64.b64encode(b"0").decode(), "other": "eA=="}),
            farmer: _account(farmer),
        }
    )
    held = check_destinations(client, TFT, [(exchange, 10), (farmer, 10), (zero, 10)])
    assert held == {exchange: "memo_required"}


def test_own_accounts_and_the_issuer_are_held_without_a_lookup():
    payout, channel, treasury = (Keypair.random().public_key for _ in range(3))
    client = _horizon({})  # no account exists: a lookup would say no_account
    own = {payout: "payout_account", channel: "channel_account", treasury: "treasury_account"}
    held = check_destinations(client, TFT, [(payout, 1), (channel, 1), (treasury, 1), (ISSUER, 1)], own)
    assert held == {**own, ISSUER: "issuer_account"}


def test_preflight_reserves_count_trustlines_data_entries_and_signers():
    payout = Keypair.random().public_key
    signers = [{"key": Keypair.random().public_key, "weight": 1, "type": "ed25519_public_key"} for _ in range(2)]
    # 2 trustlines + 3 data entries + 2 signers = 7 subentries: reserve (2 + 7) * 0.5 = 4.5 XLM;
    # 5 XLM leaves 0.5 XLM, short of a 1 XLM fee budget (counting trustlines only it would pass)
    document = _account(
        payout, native="5.0000000", data={"a": "MQ==", "b": "MQ==", "c": "MQ=="}, signers=signers, lines=2
    )
    client = _horizon({payout: document})
    with pytest.raises(PreflightError, match="above its reserve"):
        check_payout_account(client, payout, TFT, total_units=1, fee_budget_stroops=10_000_000)
    check_payout_account(client, payout, TFT, total_units=1, fee_budget_stroops=5_000_000)
    # Horizon's own count wins when it says more (offers, sponsorships)
    client = _horizon({payout: {**document, "subentry_count": 8}})
    with pytest.raises(PreflightError, match="above its reserve"):
        check_payout_account(client, payout, TFT, total_units=1, fee_budget_stroops=5_000_000)


@pytest.fixture
def sandbox_run(ledger_url, tmp_path):
    """A sandbox whose grid pays two farmers, the payout account, a channel, the treasury and the
    issuer; the run is approved."""
    with running_sandbox(ledger_close_s=0.1, seed=5, submission_timeout_s=2) as sandbox:
        document = init_sandbox(sandbox.url, tmp_path / "accounts.json", farmers=2, channels=2).document
        own = [
            {"public_key": document["payout"]["public_key"]},
            {"public_key": document["channels"][0]["public_key"]},
            {"public_key": document["treasury"]["public_key"]},
            {"public_key": document["asset"]["issuer"]},
        ]
        db = make_engine(ledger_url)
        with session_scope(db) as session:
            run = calculate_run(session, grid_snapshot(tmp_path, document["farmers"] + own)).run
            approver = Keypair.random()
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
        fund_payout(client, document, 10**6 * 10**7)
        config = PayConfig(
            network_passphrase=document["network_passphrase"],
            asset_code=document["asset"]["code"],
            asset_issuer=document["asset"]["issuer"],
            approvers=(approver.public_key,),
            approvals_required=1,
            poll_interval_s=0.1,
            tx_timeout_s=30,
            treasury_account=document["treasury"]["public_key"],
        )
        keys = SigningKeys.from_accounts_file(tmp_path / "accounts.json")
        yield sandbox, document, db, run.id, PaymentEngine(UnitsOfWork(db), client, keys, config)
        db.dispose()


def test_payments_to_our_own_accounts_or_the_issuer_are_held_with_that_reason(sandbox_run):
    _sandbox, document, db, run_id, engine = sandbox_run
    assert engine.pay(run_id).status == RunStatus.PAID
    with Session(db) as session:
        payments = session.exec(select(Payment).where(Payment.run_id == run_id)).all()
    by_reason = Counter((p.status, p.hold_reason) for p in payments)
    assert by_reason == {
        ("paid", ""): 4,
        ("held", "payout_account"): 2,
        ("held", "channel_account"): 2,
        ("held", "treasury_account"): 2,
        ("held", "issuer_account"): 2,
    }
    own = {document["payout"]["public_key"], document["channels"][0]["public_key"]}
    own |= {document["treasury"]["public_key"], document["asset"]["issuer"]}
    assert not [r for r in chain_payments(engine.client, document) if r["to"] in own]
    check_invariants(db, engine.client, document, run_id)


def test_reconciliation_counts_each_chain_operation_once(paying):
    sandbox, document, db, run_id, engine = paying()
    assert engine.pay(run_id).status == RunStatus.PAID

    class Overlapping(httpx.HTTPTransport):
        """A replica that hands the first payment over again on every page."""

        def handle_request(self, request):
            response = super().handle_request(request)
            if "/payments" not in request.url.path:
                return response
            response.read()
            body = orjson.loads(response.content)
            records = body["_embedded"]["records"]
            if records:
                body["_embedded"]["records"] = [records[0], *records, records[0]]
            return httpx.Response(
                response.status_code, content=orjson.dumps(body), headers={"content-type": "application/json"}
            )

    client = HorizonClient(sandbox.url, transport=Overlapping())
    payout, asset = document["payout"]["public_key"], document["asset"]
    with Session(db) as session:
        result = reconcile_run(session, session.get(Run, run_id), client, payout, asset["code"], asset["issuer"])
    assert result.clean, result.differences
    assert result.paid_on_chain == result.paid_in_ledger == 8
    assert result.chain_total_units == result.ledger_total_units
