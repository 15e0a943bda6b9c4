"""A farmer without a TFT trustline is paid by a claimable balance under the run's signed
policy: claimed through the sandbox's HTTP API it settles the receipt; taken back after the
window it is owed again and paid once by the next run. Chain truth: the sandbox."""

from __future__ import annotations

import dataclasses
import time

from sqlmodel import Session, select
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Asset as SdkAsset
from stellar_sdk import ClaimClaimableBalance, Keypair, TransactionBuilder

from payouts.ledger.db import session_scope
from payouts.ledger.kinds import PaymentDelivery
from payouts.ledger.models import Payment, Run
from payouts.ledger.states import PaymentStatus, RunStatus
from payouts.runs.approvals import approve_run, build_manifest, sign_manifest
from payouts.runs.claimable import NOT_CLAIMED, policy_json, reclaim_run, record_claimable_policy, settle_balances
from payouts.runs.payment import PaymentEngine, RunStopped
from payouts.stellar.claimable import BalanceState, read_balance

WINDOW_DAYS = 90


def _approve(db, run_id: int, engine: PaymentEngine, approver: Keypair, *, claimable: bool = True) -> None:
    with session_scope(db) as session:
        run = session.get(Run, run_id)
        record_claimable_policy(session, run, policy_json(claimable, WINDOW_DAYS), approved=0)
        approve_run(
            session,
            run,
            public_key=approver.public_key,
            signature_b64=sign_manifest(build_manifest(session, run), approver),
            approvers=[approver.public_key],
            required=1,
        )


def _engine(fixture_engine: PaymentEngine, approver: Keypair, **overrides) -> PaymentEngine:
    config = dataclasses.replace(fixture_engine.config, approvers=(approver.public_key,), **overrides)
    return PaymentEngine(fixture_engine.units, fixture_engine.client, fixture_engine.keys, config)


def _send(client, document: dict, keypair: Keypair, build) -> str:
    account = client.account(keypair.public_key)
    builder = TransactionBuilder(SdkAccount(keypair.public_key, account.sequence), document["network_passphrase"], 100)
    build(builder)
    envelope = builder.build()
    envelope.sign(keypair)
    result = client.submit(envelope.to_xdr())
    assert result.outcome == "success", result
    return result.tx_hash


def _pass_the_window(sandbox, client, until) -> None:
    """Move the sandbox's clock past `until` and wait for a ledger closed after it."""
    sandbox.chain.advance_clock(WINDOW_DAYS * 86_400 + 60)
    deadline = time.monotonic() + 10
    while client.latest_ledger().closed_at <= until:
        assert time.monotonic() < deadline, "the sandbox closed no ledger past the window"
        time.sleep(0.05)


def _farmer(document: dict) -> dict:
    return next(f for f in document["farmers"] if not f["trustline"])


def _payments_to(db, run_id: int, address: str) -> list[Payment]:
    with Session(db) as session:
        return list(session.exec(select(Payment).where(Payment.run_id == run_id, Payment.destination == address)).all())


def test_a_farmer_without_a_trustline_claims_the_balance_and_the_receipt_is_settled(paying):
    _sandbox, document, db, run_id, fixture_engine = paying(approve=False)
    approver = Keypair.random()
    engine = _engine(fixture_engine, approver, claimable_for_no_trustline=True)
    _approve(db, run_id, engine, approver)
    report = engine.pay(run_id)
    assert report.status == RunStatus.PAID and report.claimable == 2
    farmer = _farmer(document)
    sent = _payments_to(db, run_id, farmer["public_key"])
    assert {p.status for p in sent} == {PaymentStatus.CLAIMABLE}
    assert {p.delivery for p in sent} == {PaymentDelivery.CLAIMABLE_BALANCE}
    client, payout = engine.client, engine.keys.payout_account
    for payment in sent:
        record = client.claimable_balance(payment.claimable_balance_id)
        assert record is not None and record["sponsor"] == payout
        assert [c["destination"] for c in record["claimants"]] == [farmer["public_key"], payout]
        assert int(record["amount"].replace(".", "")) == payment.amount_tft_units
        # the balance's reclaim time is the creation ledger's close plus the signed window
        abs_before = int(record["claimants"][1]["predicate"]["not"]["abs_before_epoch"])
        assert abs_before == int(payment.claimable_until.timestamp())
        assert abs_before - int(payment.paid_at.timestamp()) == WINDOW_DAYS * 86_400
    # nothing held for this farmer: the money left the payout account on time
    with Session(db) as session:
        assert session.exec(select(Payment).where(Payment.status == PaymentStatus.HELD)).all() == []

    keypair = Keypair.from_secret(farmer["secret"])
    asset = SdkAsset(document["asset"]["code"], document["asset"]["issuer"])
    _send(client, document, keypair, lambda b: b.append_change_trust_op(asset).set_timeout(120))
    claim = sent[0]
    _send(
        client,
        document,
        keypair,
        lambda b: b.append_operation(ClaimClaimableBalance(claim.claimable_balance_id)).set_timeout(120),
    )
    with session_scope(db) as session:
        settled = settle_balances(session, client, payout)
    assert (settled.claimed, settled.live, settled.reclaimed, settled.differences) == (1, 1, 0, [])
    with Session(db) as session:
        assert session.get(Payment, claim.id).status == PaymentStatus.PAID
        assert session.get(Payment, sent[1].id).status == PaymentStatus.CLAIMABLE
    line = client.account(farmer["public_key"]).trustline(asset.code, asset.issuer)
    assert line.balance_units == claim.amount_tft_units
    # reading again changes nothing
    with session_scope(db) as session:
        again = settle_balances(session, client, payout)
    assert (again.claimed, again.live) == (0, 1)


def test_after_the_window_the_payout_account_reclaims_and_the_next_run_pays_once(paying, tmp_path):
    sandbox, document, db, run_id, fixture_engine = paying(approve=False)
    approver = Keypair.random()
    engine = _engine(fixture_engine, approver, claimable_for_no_trustline=True)
    _approve(db, run_id, engine, approver)
    assert engine.pay(run_id).status == RunStatus.PAID
    farmer = _farmer(document)
    sent = _payments_to(db, run_id, farmer["public_key"])
    client, payout = engine.client, engine.keys.payout_account
    before = client.account(payout).trustline(document["asset"]["code"], document["asset"]["issuer"]).balance_units

    early = reclaim_run(engine.units, run_id, client, engine.keys, engine.config)
    assert early.state == "nothing due"
    _pass_the_window(sandbox, client, max(p.claimable_until for p in sent))
    done = reclaim_run(engine.units, run_id, client, engine.keys, engine.config)
    assert (done.state, done.reclaimed) == ("reclaimed", 2), done
    after = client.account(payout).trustline(document["asset"]["code"], document["asset"]["issuer"]).balance_units
    assert after - before == sum(p.amount_tft_units for p in sent)
    with Session(db) as session:
        rows = [session.get(Payment, p.id) for p in sent]
    assert {(p.status, p.hold_reason) for p in rows} == {(PaymentStatus.HELD, NOT_CLAIMED)}
    assert all(p.paid_at is None for p in rows)
    for payment in sent:
        seen = read_balance(client, payment.claimable_balance_id, payout)
        assert (seen.state, seen.claimant) == (BalanceState.RECLAIMED, payout)
    # a second reclaim does nothing
    assert reclaim_run(engine.units, run_id, client, engine.keys, engine.config).state == "nothing due"

    from payouts.ledger.outstanding import outstanding

    with Session(db) as session:
        owed = [e for e in outstanding(session) if e.destination == farmer["public_key"]]
    assert sorted(e.amount_tft_units for e in owed) == sorted(p.amount_tft_units for p in sent)
    assert {e.status for e in owed} == {PaymentStatus.HELD}


def _gate_inputs(db, run_id: int, engine: PaymentEngine, payment_id: int):
    from payouts.runs.approvals import require_approved

    with Session(db) as session:
        run = session.get(Run, run_id)
        approved = require_approved(session, run, approvers=list(engine.config.approvers), required=1)
        payment = session.get(Payment, payment_id)
        session.expunge(payment)
    return approved, payment


def _claimable_envelope(engine: PaymentEngine, payment: Payment, **changes):
    """A transaction with one claimable balance, as the builder makes it, then edited."""
    from stellar_sdk import Account as SdkAccount2
    from stellar_sdk import Asset, Claimant, ClaimPredicate, CreateClaimableBalance

    from payouts.money import format_tft

    payout = engine.keys.payout_account
    claimants = changes.get(
        "claimants",
        [
            Claimant(payment.destination, ClaimPredicate.predicate_unconditional()),
            Claimant(
                payout,
                ClaimPredicate.predicate_not(ClaimPredicate.predicate_before_relative_time(WINDOW_DAYS * 86_400)),
            ),
        ],
    )
    builder = TransactionBuilder(SdkAccount2(payout, 1), engine.config.network_passphrase, base_fee=100)
    builder.add_time_bounds(0, 0).add_hash_memo(bytes.fromhex(payment.receipt_hash))
    builder.append_operation(
        CreateClaimableBalance(
            Asset(engine.config.asset_code, engine.config.asset_issuer),
            format_tft(payment.amount_tft_units),
            claimants,
            source=payout,
        )
    )
    return builder.build()


def test_the_gate_signs_a_claimable_balance_only_as_signed(paying):
    from stellar_sdk import Claimant, ClaimPredicate

    from payouts.runs.payment.gate import check_before_signing

    _sandbox, document, db, run_id, fixture_engine = paying(approve=False)
    approver = Keypair.random()
    engine = _engine(fixture_engine, approver, claimable_for_no_trustline=True)
    _approve(db, run_id, engine, approver)
    farmer = _farmer(document)
    target = _payments_to(db, run_id, farmer["public_key"])[0]
    with session_scope(db) as session:
        row = session.get(Payment, target.id)
        row.delivery = PaymentDelivery.CLAIMABLE_BALANCE
        session.add(row)
    approved, payment = _gate_inputs(db, run_id, engine, target.id)
    payout = engine.keys.payout_account
    other = Keypair.random().public_key
    unconditional = ClaimPredicate.predicate_unconditional()
    window = ClaimPredicate.predicate_not(ClaimPredicate.predicate_before_relative_time(WINDOW_DAYS * 86_400))
    refused = {
        "none": None,
        "claimant": [Claimant(other, unconditional), Claimant(payout, window)],
        "reclaimer": [Claimant(payment.destination, unconditional), Claimant(other, window)],
        "third": [
            Claimant(payment.destination, unconditional),
            Claimant(payout, window),
            Claimant(other, unconditional),
        ],
        "only the farmer": [Claimant(payment.destination, unconditional)],
        "window": [
            Claimant(payment.destination, unconditional),
            Claimant(payout, ClaimPredicate.predicate_not(ClaimPredicate.predicate_before_relative_time(60))),
        ],
        "conditional farmer": [
            Claimant(payment.destination, ClaimPredicate.predicate_before_relative_time(60)),
            Claimant(payout, window),
        ],
    }
    with Session(db) as session:
        for name, claimants in refused.items():
            changes = {} if claimants is None else {"claimants": claimants}
            reason = check_before_signing(
                session,
                approved,
                [payment],
                _claimable_envelope(engine, payment, **changes),
                memo_mode="per_receipt",
                asset_code=engine.config.asset_code,
                asset_issuer=engine.config.asset_issuer,
                payout_account=payout,
            )
            if name == "none":
                assert reason is None
            else:
                assert reason is not None and ("field claimants" in reason or "reclaim_after_s" in reason), (
                    name,
                    reason,
                )
        # a manifest signed without the policy never lets a balance through
        unsigned = dataclasses.replace(approved, claimable_policy="")
        reason = check_before_signing(
            session,
            unsigned,
            [payment],
            _claimable_envelope(engine, payment),
            memo_mode="per_receipt",
            asset_code=engine.config.asset_code,
            asset_issuer=engine.config.asset_issuer,
            payout_account=payout,
        )
        assert reason is not None and "field claimable_balances" in reason


def test_an_edited_claimant_stops_the_run_before_anything_is_signed(paying):
    _sandbox, document, db, run_id, fixture_engine = paying(approve=False)
    approver = Keypair.random()
    engine = _engine(fixture_engine, approver, claimable_for_no_trustline=True)
    _approve(db, run_id, engine, approver)
    farmer = _farmer(document)
    target = _payments_to(db, run_id, farmer["public_key"])[0]
    with session_scope(db) as session:
        row = session.get(Payment, target.id)
        row.destination = Keypair.random().public_key  # the balance's claimant, redirected
        session.add(row)
    try:
        engine.pay(run_id)
    except RunStopped as stopped:
        assert f"payment {target.id}" in str(stopped) and "destination" in str(stopped)
    else:
        raise AssertionError("the run was paid with an edited claimant")
    with Session(db) as session:
        assert session.get(Run, run_id).status == RunStatus.STOPPED
    assert [b for b in _balances_of(engine)] == []


def test_a_claimable_delivery_the_manifest_does_not_sign_stops_the_run(paying):
    _sandbox, document, db, run_id, fixture_engine = paying(approve=False)
    approver = Keypair.random()
    engine = _engine(fixture_engine, approver, claimable_for_no_trustline=True)
    _approve(db, run_id, engine, approver, claimable=False)
    target = next(p for p in _payments_to(db, run_id, document["farmers"][0]["public_key"]))
    with session_scope(db) as session:
        row = session.get(Payment, target.id)
        row.delivery = PaymentDelivery.CLAIMABLE_BALANCE  # edited: the signed manifest has no policy
        session.add(row)
    engine.pay(run_id)
    with Session(db) as session:
        run = session.get(Run, run_id)
        assert run.status == RunStatus.STOPPED and "field claimable_balances" in run.status_reason
        assert session.get(Payment, target.id).status == PaymentStatus.PENDING
    assert _balances_of(engine) == []


def test_an_edited_policy_voids_the_approvals(paying):
    from payouts.runs.approvals import NotApproved

    _sandbox, _document, db, run_id, fixture_engine = paying(approve=False)
    approver = Keypair.random()
    engine = _engine(fixture_engine, approver, claimable_for_no_trustline=True)
    _approve(db, run_id, engine, approver)
    with session_scope(db) as session:
        run = session.get(Run, run_id)
        run.claimable_policy_json = policy_json(True, 3650)  # a longer window than was signed
        session.add(run)
    try:
        engine.pay(run_id)
    except NotApproved as refused:
        assert "valid approval" in str(refused)
    else:
        raise AssertionError("a run whose signed policy was edited was paid")
    assert _balances_of(engine) == []


def _balances_of(engine: PaymentEngine) -> list[dict]:
    response = engine.client._get("/claimable_balances", {"sponsor": engine.keys.payout_account, "limit": 200})
    return list(response.json()["_embedded"]["records"])
