"""A farmer who adds the TFT trustline is paid by an off-cycle run of retries (`payouts run
--retries-now`), with its own approvals, beside the period's monthly run; the next monthly run
does not pay the same receipt again. Chain truth: the sandbox's payments."""

from __future__ import annotations

import dataclasses
import json

import pytest
from sqlmodel import Session, select
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Asset as SdkAsset
from stellar_sdk import Keypair, TransactionBuilder
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.ledger.db import make_engine, session_scope
from payouts.ledger.models import Payment, Run
from payouts.ledger.repository import OFF_CYCLE_RUN, live_run_for_period
from payouts.ledger.states import PaymentStatus, RunStatus
from payouts.ledger.types import utcnow
from payouts.ledger.unit_of_work import UnitsOfWork
from payouts.runs.approvals import approve_run, build_manifest, reject_run, sign_manifest
from payouts.runs.funding import export_funding, sign_funding, submit_funding
from payouts.runs.monthly import continue_run
from payouts.runs.payment import PayConfig, PaymentEngine, RunNotPayable, RunStopped
from payouts.runs.retries_now import current_addresses, outstanding_held, record_off_cycle_run, select_receivable
from payouts.runs.service import calculate_run
from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import init_sandbox
from payouts.snapshot.load import load_snapshot
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.keys import SigningKeys, write_keypair
from payouts.stellar.preflight import Asset, check_destinations
from tests import factories
from tests.support.payments import chain_payments, check_invariants, make_treasury_multisig

runner = CliRunner()


def _add_trustline(client, document: dict, farmer: dict) -> None:
    """The farmer fixes the wallet: a ChangeTrust for TFT, signed with the farmer's own key."""
    keypair = Keypair.from_secret(farmer["secret"])
    account = client.account(keypair.public_key)
    envelope = (
        TransactionBuilder(SdkAccount(keypair.public_key, account.sequence), document["network_passphrase"], 100)
        .append_change_trust_op(SdkAsset(document["asset"]["code"], document["asset"]["issuer"]))
        .set_timeout(120)
        .build()
    )
    envelope.sign(keypair)
    assert client.submit(envelope.to_xdr()).outcome == "success"


def _month(tmp_path, farmers: list[dict], offset: int):
    """The `paying` fixture's grid (two nodes per farm) for another period."""
    farms, nodes = [], []
    for index, farmer in enumerate(farmers):
        farm_id = 100 + index
        farms.append(
            {
                "farm_id": farm_id,
                "name": f"farm {farm_id}",
                "twin_id": 7,
                "certification": "NotCertified",
                "stellar_address": farmer["public_key"],
            }
        )
        nodes += [factories.node(farm_id * 10 + n, farm_id=farm_id) for n in range(2)]
    document = factories.snapshot(period_offset=offset, nodes=nodes, farms=farms)
    return load_snapshot(factories.write(tmp_path / f"month-{offset}.json", document))


def _to(client, document: dict, address: str) -> list[int]:
    return sorted(int(r["amount"].replace(".", "")) for r in chain_payments(client, document) if r["to"] == address)


@pytest.fixture
def operator_env(monkeypatch, tmp_path, ledger_url):
    """The environment the CLI reads, beside the `paying` fixture's sandbox and ledger."""
    approver = Keypair.random()
    write_keypair(tmp_path / "approver.key", approver)

    def apply(sandbox) -> None:
        env = {
            "PAYOUTS_DATABASE_URL": ledger_url,
            "PAYOUTS_STELLAR_ACCOUNTS_FILE": str(tmp_path / "accounts.json"),
            "PAYOUTS_HORIZON_URL": sandbox.url,
            "PAYOUTS_APPROVERS": approver.public_key,
            "PAYOUTS_NETWORK": "dev",
            "PAYOUTS_TX_TIMEOUT_S": "30",
            "PAYOUTS_STATE_DIR": str(tmp_path / "state"),
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)

    return apply


def _cli(*args: str) -> dict:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout) if "--json" in args else {"output": result.output}


def test_an_off_cycle_run_pays_a_farmer_who_added_the_trustline_once(paying, operator_env, tmp_path):
    sandbox, document, db, run_id, engine = paying(approve=False)
    operator_env(sandbox)
    client = engine.client
    _cli("approve", str(run_id), "-k", str(tmp_path / "approver.key"), "-y")
    _cli("pay", str(run_id))
    farmer = next(f for f in document["farmers"] if not f["trustline"])
    with Session(db) as session:
        held = session.exec(select(Payment).where(Payment.run_id == run_id, Payment.status == PaymentStatus.HELD)).all()
    assert {p.destination for p in held} == {farmer["public_key"]} and len(held) == 2
    assert {p.hold_reason for p in held} == {"no_trustline"}
    owed = sorted(p.amount_tft_units for p in held)

    # still no trustline: nothing can be paid now, and no run is recorded
    nothing = _cli("run", "--retries-now", "--in-process", "--json")
    assert nothing["run_id"] is None and "2 no_trustline" in nothing["waits_for"]
    with Session(db) as session:
        assert session.exec(select(Run).where(Run.kind == OFF_CYCLE_RUN)).all() == []

    _add_trustline(client, document, farmer)
    made = _cli("run", "--retries-now", "--in-process", "--json")
    off_cycle_id = made["run_id"]
    assert made["status"] == RunStatus.CALCULATED and "approvals" in made["waits_for"]
    with Session(db) as session:
        off_cycle = session.get(Run, off_cycle_id)
        assert off_cycle.kind == OFF_CYCLE_RUN and off_cycle.period_offset == session.get(Run, run_id).period_offset
        retries = session.exec(select(Payment).where(Payment.run_id == off_cycle_id)).all()
        assert sorted(p.retry_of_payment_id for p in retries) == sorted(p.id for p in held)
        assert all(p.kind == "retry" and p.in_manifest for p in retries)
        assert off_cycle.total_tft_units == sum(owed)
        # the period's monthly run is still the period's run
        assert live_run_for_period(session, off_cycle.period_offset).id == run_id

    listed = {row["run_id"]: row for row in _cli("runs", "--json")}
    assert listed[off_cycle_id]["kind"] == OFF_CYCLE_RUN and listed[run_id]["kind"] == "monthly"
    # its own review and approval
    shown = _cli("show", str(off_cycle_id), "--json")
    assert any("off-cycle run: 2 retries" in note for note in shown["notes"])
    _cli("approve", str(off_cycle_id), "-k", str(tmp_path / "approver.key"), "-y")

    # the next month is calculated while the off-cycle run is open: it retries nothing of it
    with session_scope(db) as session:
        month2 = calculate_run(session, _month(tmp_path, document["farmers"], 82)).run
        month2_id = month2.id
    with Session(db) as session:
        month2_payments = session.exec(select(Payment).where(Payment.run_id == month2_id)).all()
    assert [p for p in month2_payments if p.kind == "retry"] == []

    paid = _cli("run", "--retries-now", "--in-process", "--json")
    assert paid["run_id"] == off_cycle_id
    assert "pay" in paid["did"] and paid["status"] == RunStatus.EXPORTED, paid
    assert _to(client, document, farmer["public_key"]) == owed
    with Session(db) as session:
        assert {session.get(Payment, p.id).status for p in held} == {PaymentStatus.RETRIED}
    check_invariants(db, client, document, off_cycle_id)

    # the monthly run pays its own receipts; the retried ones are not paid again
    _cli("approve", str(month2_id), "-k", str(tmp_path / "approver.key"), "-y")
    _cli("pay", str(month2_id))
    month2_owed = sorted(p.amount_tft_units for p in month2_payments if p.destination == farmer["public_key"])
    assert _to(client, document, farmer["public_key"]) == sorted(owed + month2_owed)
    check_invariants(db, client, document, month2_id)

    # nothing is held any more: a later call makes no run
    after = _cli("run", "--retries-now", "--in-process", "--json")
    assert after["run_id"] is None and after["waits_for"] == "no payment is held: nothing to retry"


def _approve(db, run_id: int, approver: Keypair) -> None:
    with session_scope(db) as session:
        run = session.get(Run, run_id)
        approve_run(
            session,
            run,
            public_key=approver.public_key,
            signature_b64=sign_manifest(build_manifest(session, run), approver),
            approvers=[approver.public_key],
            required=1,
        )


def test_two_runs_retrying_the_same_payment_at_once_pay_it_never_twice(paying, tmp_path):
    """The race an off-cycle run and a period's calculation can run: each reads the payment as
    still held, and both record a retry of it. Each run stops before paying, naming the other;
    once one is rejected the other pays the receipt once."""
    _sandbox, document, db, run_id, fixture_engine = paying(approve=False)
    approver = Keypair.random()
    config = dataclasses.replace(fixture_engine.config, approvers=(approver.public_key,))
    engine = PaymentEngine(fixture_engine.units, fixture_engine.client, fixture_engine.keys, config)
    client = engine.client
    _approve(db, run_id, approver)
    assert engine.pay(run_id).status == RunStatus.PAID
    farmer = next(f for f in document["farmers"] if not f["trustline"])
    _add_trustline(client, document, farmer)
    with Session(db) as session:
        stale = outstanding_held(session)  # read before the other run is recorded
    assert len(stale) == 2
    with session_scope(db) as session:
        month2_id = calculate_run(session, _month(tmp_path, document["farmers"], 82)).run.id
    with session_scope(db) as session:
        assert outstanding_held(session) == []  # the monthly run retries them now
        selection = select_receivable(session, stale, current_addresses(session), lambda amounts: {})
        off_cycle_id = record_off_cycle_run(session, selection, utcnow()).id
    _approve(db, off_cycle_id, approver)
    _approve(db, month2_id, approver)

    for first, second in ((off_cycle_id, month2_id), (month2_id, off_cycle_id)):
        with pytest.raises(RunStopped, match=f"which run {second} retries too"):
            engine.pay(first)
    assert _to(client, document, farmer["public_key"]) == []

    with session_scope(db) as session:
        reject_run(session, session.get(Run, off_cycle_id), "made at the same moment as the monthly run")
    with session_scope(db) as session:
        continue_run(session, session.get(Run, month2_id))
    assert engine.pay(month2_id).status == RunStatus.PAID
    owed = sorted(p.candidate.payment.amount_tft_units for p in selection.selected)
    with Session(db) as session:
        month2_own = [
            p.amount_tft_units
            for p in session.exec(select(Payment).where(Payment.run_id == month2_id, Payment.kind == "receipt")).all()
            if p.destination == farmer["public_key"]
        ]
    assert _to(client, document, farmer["public_key"]) == sorted(owed + month2_own)
    check_invariants(db, client, document, month2_id)


def test_an_off_cycle_run_is_funded_by_the_multisig_treasury_for_its_own_total(ledger_url, tmp_path):
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        document = init_sandbox(
            sandbox.url, tmp_path / "accounts.json", farmers=3, without_trustline=1, channels=2
        ).document
        client = HorizonClient(sandbox.url)
        alice, bob = Keypair.random(), Keypair.random()
        make_treasury_multisig(client, document, [alice, bob])
        db = make_engine(ledger_url)
        approver = Keypair.random()
        asset = Asset(document["asset"]["code"], document["asset"]["issuer"])
        config = PayConfig(
            network_passphrase=document["network_passphrase"],
            asset_code=asset.code,
            asset_issuer=asset.issuer,
            approvers=(approver.public_key,),
            approvals_required=1,
            poll_interval_s=0.1,
            tx_timeout_s=30,
            two_tier=True,
        )
        keys = SigningKeys.from_accounts_file(tmp_path / "accounts.json")
        engine = PaymentEngine(UnitsOfWork(db), client, keys, config)

        def fund(run_id: int) -> int:
            with session_scope(db) as session:
                funding = export_funding(
                    session,
                    session.get(Run, run_id),
                    client,
                    treasury=document["treasury"]["public_key"],
                    payout_account=keys.payout_account,
                    asset_code=asset.code,
                    asset_issuer=asset.issuer,
                    network_passphrase=document["network_passphrase"],
                    approvers=[approver.public_key],
                    required=1,
                )
            assert submit_funding(UnitsOfWork(db), sign_funding(sign_funding(funding, alice), bob), client) == (
                RunStatus.FUNDED
            )
            return funding.amount_tft_units

        with session_scope(db) as session:
            month_id = calculate_run(session, _month(tmp_path, document["farmers"], 81)).run.id
        _approve(db, month_id, approver)
        fund(month_id)
        assert engine.pay(month_id).status == RunStatus.PAID
        farmer = next(f for f in document["farmers"] if not f["trustline"])
        _add_trustline(client, document, farmer)

        own = {keys.payout_account: "payout_account", document["treasury"]["public_key"]: "treasury_account"}
        with session_scope(db) as session:
            selection = select_receivable(
                session,
                outstanding_held(session),
                current_addresses(session),
                lambda amounts: check_destinations(client, asset, amounts, own),
            )
            off_cycle = record_off_cycle_run(session, selection, utcnow())
            off_cycle_id, total = off_cycle.id, off_cycle.total_tft_units
        owed = sorted(s.candidate.payment.amount_tft_units for s in selection.selected)
        assert len(owed) == 2 and total == sum(owed)
        _approve(db, off_cycle_id, approver)
        with pytest.raises(RunNotPayable, match="not funded"):
            engine.pay(off_cycle_id)
        before = client.account(keys.payout_account).trustline(asset.code, asset.issuer).balance_units
        assert fund(off_cycle_id) == total
        assert engine.pay(off_cycle_id).status == RunStatus.PAID
        after = client.account(keys.payout_account).trustline(asset.code, asset.issuer).balance_units
        assert after == before  # funded with exactly what it paid
        assert _to(client, document, farmer["public_key"]) == owed
        check_invariants(db, client, document, off_cycle_id)
        client.close()
