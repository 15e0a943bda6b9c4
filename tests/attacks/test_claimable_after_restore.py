"""A claimable-balance transaction that landed while the ledger lost its row (the ledger restored
from a backup taken before `pay`, then `payouts recover RUN`): the scan adopts the balance from
the chain, as it adopts payments, and nothing is created twice. Before, the scan called it a
transaction that matches nothing and stopped the run."""

from __future__ import annotations

import json

import httpx
from sqlmodel import Session, select
from stellar_sdk import Keypair

from payouts.ledger.db import make_engine, session_scope
from payouts.ledger.kinds import PaymentDelivery
from payouts.ledger.models import LedgerEvent, Payment, Run
from payouts.ledger.states import PaymentStatus, RunStatus
from payouts.ledger.unit_of_work import UnitsOfWork
from payouts.runs.payment import PaymentEngine
from payouts.runs.payment.scan import horizon_operations
from payouts.runs.reconcile import reconcile_run, record_reconciliation
from payouts.stellar.horizon import HorizonClient
from tests.runs.conftest import paying  # noqa: F401
from tests.runs.test_chain_scan import _receipts_on_chain, restored_copy
from tests.runs.test_claimable import _approve, _balances_of, _engine, _farmer, _payments_to
from tests.support.network_time import takeover_waits_passed


def _rows(url: str, run_id: int, address: str) -> list[Payment]:
    return _payments_to(make_engine(url), run_id, address)


def _paid_after_a_backup(paying, tmp_path, ledger_url):  # noqa: F811
    """A run paid with two claimable balances, and a ledger restored from a backup taken before."""
    sandbox, document, db, run_id, fixture_engine = paying(approve=False, tx_timeout_s=5)
    approver = Keypair.random()
    engine = _engine(fixture_engine, approver, claimable_for_no_trustline=True)
    _approve(db, run_id, engine, approver)
    before_pay = restored_copy(ledger_url, tmp_path)
    first = engine.pay(run_id)
    assert first.status == RunStatus.PAID and first.claimable == 2
    farmer = _farmer(document)
    sent = {p.receipt_hash: p for p in _rows(ledger_url, run_id, farmer["public_key"])}
    return sandbox, document, run_id, engine, before_pay, first, farmer, sent


def _adopted_as_sent(url: str, run_id: int, farmer: dict, sent: dict[str, Payment]) -> dict[str, Payment]:
    """The restored ledger's rows of the farmer's balances, as the lost ones were recorded."""
    adopted = {p.receipt_hash: p for p in _rows(url, run_id, farmer["public_key"])}
    assert adopted.keys() == sent.keys()
    for receipt_hash, row in adopted.items():
        original = sent[receipt_hash]
        assert row.status == PaymentStatus.CLAIMABLE and row.delivery == PaymentDelivery.CLAIMABLE_BALANCE
        assert (row.claimable_balance_id, row.tx_hash) == (original.claimable_balance_id, original.tx_hash)
        assert row.claimable_until == original.claimable_until
    return adopted


def test_a_claimable_balance_the_ledger_lost_is_adopted_not_paid_again(paying, tmp_path, ledger_url):  # noqa: F811
    sandbox, document, run_id, engine, before_pay, first, farmer, sent = _paid_after_a_backup(
        paying, tmp_path, ledger_url
    )
    balances = sorted(b["id"] for b in _balances_of(engine))
    assert balances == sorted(p.claimable_balance_id for p in sent.values())
    on_chain = _receipts_on_chain(engine.client, document)

    # the operator restores the backup taken before `pay`, then recovers the run
    restored = PaymentEngine(UnitsOfWork(make_engine(before_pay)), engine.client, engine.keys, engine.config)
    with takeover_waits_passed(sandbox, before_pay) as waited_for:
        _status, scan = restored.recover(run_id)
    assert len(waited_for) == 1, waited_for
    assert scan.problems == [], scan.problems
    assert scan.adopted_payments == first.paid + first.claimable
    adopted = _adopted_as_sent(before_pay, run_id, farmer, sent)
    with Session(make_engine(before_pay)) as session:
        events = session.exec(select(LedgerEvent).where(LedgerEvent.event == "payment.adopted")).all()
    assert {p.claimable_balance_id for p in adopted.values()} <= {
        __import__("orjson").loads(e.detail_json).get("balance_id") for e in events
    }

    # paying again sends nothing: no second balance, no payment to the farmer
    again = restored.pay(run_id)
    assert again.status == RunStatus.PAID and again.transactions == 0, again
    assert sorted(b["id"] for b in _balances_of(engine)) == balances
    assert _receipts_on_chain(engine.client, document) == on_chain

    with session_scope(make_engine(before_pay)) as session:
        run = session.get(Run, run_id)
        result = reconcile_run(
            session,
            run,
            engine.client,
            engine.keys.payout_account,
            document["asset"]["code"],
            document["asset"]["issuer"],
        )
        record_reconciliation(session, run, result)
    assert result.clean, (result.differences, result.unknown_on_chain)
    assert result.paid_in_ledger == result.paid_on_chain == first.paid + first.claimable


def test_a_balance_from_the_payout_account_with_another_window_is_not_adopted(paying):  # noqa: F811
    from stellar_sdk import Account as SdkAccount
    from stellar_sdk import TransactionBuilder

    from payouts.runs.payment import RunStopped
    from payouts.stellar.claimable import claimable_balance_op

    _sandbox, document, db, run_id, fixture_engine = paying(approve=False)
    approver = Keypair.random()
    engine = _engine(fixture_engine, approver, claimable_for_no_trustline=True)
    _approve(db, run_id, engine, approver)
    farmer = _farmer(document)
    target = _payments_to(db, run_id, farmer["public_key"])[0]
    payout = Keypair.from_secret(document["payout"]["secret"])
    account = engine.client.account(payout.public_key)
    # looks like ours (memo, farmer, amount) but the payout account may take it back in a minute
    envelope = (
        TransactionBuilder(SdkAccount(payout.public_key, account.sequence), document["network_passphrase"], 100)
        .add_hash_memo(bytes.fromhex(target.receipt_hash))
        .append_operation(
            claimable_balance_op(
                destination=target.destination,
                payout_account=payout.public_key,
                asset_code=document["asset"]["code"],
                asset_issuer=document["asset"]["issuer"],
                amount_units=target.amount_tft_units,
                reclaim_after_s=60,
            )
        )
        .set_timeout(120)
        .build()
    )
    envelope.sign(payout)
    landed = engine.client.submit(envelope.to_xdr())
    assert landed.outcome == "success"
    try:
        _status, scan = engine.recover(run_id)
    except RunStopped as stopped:
        problems = str(stopped)
    else:
        problems = "; ".join(scan.problems)
    assert landed.tx_hash in problems and "matches nothing" in problems
    with Session(db) as session:
        assert session.get(Payment, target.id).status == PaymentStatus.PENDING


class WithoutEnvelopes(httpx.BaseTransport):
    """Between the client and the sandbox: transaction records come back without their
    `envelope_xdr` (as a Horizon that leaves it out, or a proxy that trims it, serves them)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.dropped = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        path = request.url.path
        if request.method != "GET" or not path.endswith("/transactions") and "/transactions/" not in path:
            return response
        response.read()
        if response.status_code != 200:
            return response
        document = json.loads(response.content)
        records = document.get("_embedded", {}).get("records") if "_embedded" in document else [document]
        for record in records or []:
            if record.pop("envelope_xdr", None) is not None:
                self.dropped += 1
        headers = [
            (k, v) for k, v in response.headers.items() if k.lower() not in ("content-length", "content-encoding")
        ]
        return httpx.Response(response.status_code, headers=headers, content=json.dumps(document).encode())

    def close(self) -> None:
        self.inner.close()


def test_a_lost_balance_whose_transaction_comes_without_its_envelope_is_adopted(paying, tmp_path, ledger_url):  # noqa: F811
    sandbox, document, run_id, engine, before_pay, first, farmer, sent = _paid_after_a_backup(
        paying, tmp_path, ledger_url
    )
    balances = sorted(b["id"] for b in _balances_of(engine))

    # the restored ledger recovers through a Horizon that serves no envelopes
    trimming = WithoutEnvelopes()
    client = HorizonClient(sandbox.url, timeout_s=10, transport=trimming)
    restored = PaymentEngine(UnitsOfWork(make_engine(before_pay)), client, engine.keys, engine.config)
    with takeover_waits_passed(sandbox, before_pay) as waited_for:
        _status, scan = restored.recover(run_id)
    assert len(waited_for) == 1, waited_for
    assert trimming.dropped > 0
    assert scan.problems == [], scan.problems
    assert scan.adopted_payments == first.paid + first.claimable
    _adopted_as_sent(before_pay, run_id, farmer, sent)

    # nothing is created twice, and the adopted balances reconcile against the chain
    again = restored.pay(run_id)
    assert again.status == RunStatus.PAID and again.transactions == 0, again
    assert sorted(b["id"] for b in _balances_of(engine)) == balances
    with session_scope(make_engine(before_pay)) as session:
        run = session.get(Run, run_id)
        result = reconcile_run(
            session, run, client, engine.keys.payout_account, document["asset"]["code"], document["asset"]["issuer"]
        )
    assert result.clean, (result.differences, result.unknown_on_chain)
    client.close()


def test_a_balance_id_horizon_does_not_confirm_is_not_adopted(paying):  # noqa: F811
    """Without the envelope the balance id is worked out from the transaction's source and
    sequence; a record whose sequence does not give a balance Horizon created in it adopts nothing."""
    _sandbox, document, db, run_id, fixture_engine = paying(approve=False)
    approver = Keypair.random()
    engine = _engine(fixture_engine, approver, claimable_for_no_trustline=True)
    _approve(db, run_id, engine, approver)
    assert engine.pay(run_id).claimable == 2
    sent = _payments_to(db, run_id, _farmer(document)["public_key"])
    history = engine.client.transactions(engine.keys.payout_account)
    record = next(r for r in history if r["hash"] == sent[0].tx_hash)
    record.pop("envelope_xdr")
    ops = horizon_operations(engine.client, record)
    assert [op.get("balance_id") for op in ops] == [sent[0].claimable_balance_id]
    record["source_account_sequence"] = str(int(record["source_account_sequence"]) + 1)
    assert [op.get("balance_id") for op in horizon_operations(engine.client, record)] == [None]
