"""Payments are bound to what was signed (SQLite and PostgreSQL): a ledger edited after
approval pays nothing to the edited address; approvals count only for the run they name."""

from __future__ import annotations

from dataclasses import replace

import orjson
import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select
from stellar_sdk import Keypair

from payouts.ledger.db import session_scope
from payouts.ledger.models import Approval, LedgerEvent, Payment, Receipt, Run
from payouts.ledger.states import PaymentStatus, RunStatus
from payouts.runs.approvals import (
    ManifestRejected,
    NotApproved,
    approve_run,
    build_manifest,
    reject_run,
    sign_manifest,
    valid_approvals,
)
from payouts.runs.payment import RunStopped
from payouts.runs.payment.gate import check_before_signing
from payouts.runs.service import calculate_run
from payouts.stellar.build import PaymentOp, build_payment_envelope
from tests.runs.test_retries import _approve, _month, two_farms  # noqa: F401
from tests.support.payments import chain_payments, grid_snapshot


def _payable(db, run_id: int) -> list[Payment]:
    with Session(db) as session:
        return list(
            session.exec(
                select(Payment)
                .where(Payment.run_id == run_id, Payment.status == PaymentStatus.PENDING)
                .order_by(col(Payment.id))
            ).all()
        )


def _stopped_reason(db, run_id: int) -> str:
    with Session(db) as session:
        run = session.get(Run, run_id)
        assert run.status == RunStatus.STOPPED
        return run.status_reason


def test_an_edited_destination_and_receipt_address_stop_the_run(paying):
    _sandbox, document, db, run_id, engine = paying()
    victim = _payable(db, run_id)[0]
    thief = Keypair.random().public_key
    with session_scope(db) as session:
        session.execute(update(Payment).where(col(Payment.id) == victim.id).values(destination=thief))
        session.execute(
            update(Receipt).where(col(Receipt.id) == victim.receipt_id).values(stellar_payout_address=thief)
        )
    with pytest.raises(RunStopped, match=f"payment {victim.id} .*destination differs.*field destination"):
        engine.pay(run_id)
    assert f"payment {victim.id}" in _stopped_reason(db, run_id)
    assert not [r for r in chain_payments(engine.client, document) if r["to"] == thief]
    assert chain_payments(engine.client, document) == []


def test_an_unknown_kind_with_a_new_destination_is_refused(paying):
    _sandbox, document, db, run_id, engine = paying()
    victim = _payable(db, run_id)[0]
    thief = Keypair.random().public_key
    with session_scope(db) as session:
        session.execute(update(Payment).where(col(Payment.id) == victim.id).values(kind="bonus", destination=thief))
    with pytest.raises(RunStopped, match=f"payment {victim.id} \\(bonus.*kind: 'bonus' is not a payment kind"):
        engine.pay(run_id)
    assert not [r for r in chain_payments(engine.client, document) if r["to"] == thief]


def test_an_amount_moved_between_two_payments_with_the_total_unchanged_stops_the_run(paying):
    _sandbox, document, db, run_id, engine = paying()
    first, second = _payable(db, run_id)[:2]
    moved = first.amount_tft_units - 1
    with session_scope(db) as session:
        session.execute(update(Payment).where(col(Payment.id) == first.id).values(amount_tft_units=1))
        session.execute(
            update(Payment).where(col(Payment.id) == second.id).values(amount_tft_units=second.amount_tft_units + moved)
        )
    with Session(db) as session:  # the run's total is what was approved
        assert build_manifest(session, session.get(Run, run_id)).total_tft_units == sum(
            p.amount_tft_units for p in _payable(db, run_id)
        )
    with pytest.raises(RunStopped, match=f"payment {first.id} .*amount differs.*field amount_tft_units"):
        engine.pay(run_id)
    assert chain_payments(engine.client, document) == []


def test_an_edit_after_the_run_started_is_refused_before_signing(paying):
    _sandbox, document, db, run_id, engine = paying(channels=1)
    thief = Keypair.random().public_key
    edited: list[int] = []

    def edit_once(_report) -> None:
        if edited:
            return
        pending = _payable(db, run_id)
        with session_scope(db) as session:
            session.execute(update(Payment).where(col(Payment.id) == pending[0].id).values(destination=thief))
        edited.append(pending[0].id)

    report = engine.pay(run_id, progress=edit_once)
    assert report.status == RunStatus.STOPPED
    assert f"payment {edited[0]}" in report.reason and "field destination" in report.reason
    assert not [r for r in chain_payments(engine.client, document) if r["to"] == thief]


def test_an_approval_copied_onto_a_recalculated_run_does_not_count(paying, tmp_path):
    _sandbox, document, db, run_id, engine = paying()
    with session_scope(db) as session:
        run = session.get(Run, run_id)
        rejected_sha = build_manifest(session, run).sha256.hex()
        reject_run(session, run, "wrong month")
    with session_scope(db) as session:
        fresh = calculate_run(session, grid_snapshot(tmp_path, document["farmers"])).run
        assert fresh.id != run_id and fresh.snapshot_sha256 == run.snapshot_sha256
        fresh_manifest = build_manifest(session, fresh)
        for approval in session.exec(select(Approval).where(Approval.run_id == run_id)).all():
            # copied as it is, and with the new run's manifest hash put in
            for sha in (approval.manifest_sha256, fresh_manifest.sha256.hex()):
                session.add(
                    Approval(
                        run_id=fresh.id,
                        approver_public_key=approval.approver_public_key,
                        manifest_sha256=sha,
                        manifest_json=approval.manifest_json,
                        signature_b64=approval.signature_b64,
                        created_at=approval.created_at,
                    )
                )
        session.execute(update(Run).where(col(Run.id) == fresh.id).values(status=RunStatus.APPROVED))
    with pytest.raises(NotApproved, match="0 valid approval"):
        engine.pay(fresh.id)
    assert chain_payments(engine.client, document) == []
    # the rejected manifest never counts again, even with its run's status edited back
    with session_scope(db) as session:  # (one live run per period: the fresh one goes first)
        session.execute(update(Run).where(col(Run.id) == fresh.id).values(status=RunStatus.REPLACED))
        session.execute(update(Run).where(col(Run.id) == run_id).values(status=RunStatus.CALCULATED))
    with session_scope(db) as session:
        old = session.get(Run, run_id)
        assert build_manifest(session, old).sha256.hex() == rejected_sha
        assert valid_approvals(session, old, list(engine.config.approvers)) == []
        approver = Keypair.random()
        with pytest.raises(ManifestRejected, match="never be approved again"):
            approve_run(
                session,
                old,
                public_key=approver.public_key,
                signature_b64=sign_manifest(build_manifest(session, old), approver),
                approvers=[approver.public_key],
                required=1,
            )


def test_a_retry_of_an_edited_held_row_is_refused(two_farms, tmp_path):  # noqa: F811
    document, client, db, approver, engine = two_farms
    farmer_1, farmer_2 = (f["public_key"] for f in document["farmers"])
    with session_scope(db) as session:
        first = calculate_run(session, _month(tmp_path, 81, "", farmer_1)).run
    _approve(db, first.id, approver)
    assert engine.pay(first.id).paid == 1
    # the held row is edited: ten times the amount
    with session_scope(db) as session:
        held = session.exec(select(Payment).where(Payment.run_id == first.id, Payment.node_id == 20)).one()
        original_units = held.amount_tft_units
        session.execute(update(Payment).where(col(Payment.id) == held.id).values(amount_tft_units=original_units * 10))
    with session_scope(db) as session:
        second = calculate_run(session, _month(tmp_path, 82, farmer_2, farmer_1)).run
        retry = session.exec(select(Payment).where(Payment.run_id == second.id, Payment.kind == "retry")).one()
        assert retry.amount_tft_units == original_units * 10  # the retry copied the edited row
    _approve(db, second.id, approver)
    with pytest.raises(RunStopped, match=f"payment {retry.id} \\(retry.*amount_tft_units: the retry receipt says"):
        engine.pay(second.id)
    assert not [r for r in chain_payments(client, document) if r["to"] == farmer_2]


def test_a_batch_memo_that_is_not_the_root_of_the_derived_hashes_is_not_signed(paying):
    _sandbox, document, db, run_id, _engine = paying(memo_mode="batch")
    group = _payable(db, run_id)[:3]
    with Session(db) as session:
        approved = build_manifest(session, session.get(Run, run_id))

        def envelope(memo: bytes):
            return build_payment_envelope(
                network_passphrase=document["network_passphrase"],
                source_account=document["payout"]["public_key"],
                sequence=1,
                payout_account=document["payout"]["public_key"],
                asset_code=document["asset"]["code"],
                asset_issuer=document["asset"]["issuer"],
                operations=[PaymentOp(p.destination, p.amount_tft_units) for p in group],
                memo_hash=memo,
                fee_per_operation_stroops=100,
                min_time=0,
                max_time=10,
            )

        from payouts.stellar.merkle import merkle_root

        kwargs = {"memo_mode": "batch", "asset_code": "TFT", "asset_issuer": document["asset"]["issuer"]}
        good = merkle_root([p.receipt_hash for p in group])
        assert check_before_signing(session, approved, group, envelope(good), **kwargs) is None
        wrong = merkle_root([p.receipt_hash for p in group[:2]])
        reason = check_before_signing(session, approved, group, envelope(wrong), **kwargs)
        assert reason is not None and "field memo" in reason
        # a payment the approved manifest does not hold is refused too
        other = build_manifest(session, session.get(Run, run_id))
        object.__setattr__(other, "payments", frozenset())
        assert "not in the approved manifest" in check_before_signing(session, other, group, envelope(good), **kwargs)


def test_approvals_of_the_earlier_manifest_format_need_renewal(paying):
    _sandbox, _document, db, run_id, engine = paying(approve=False)
    approver = Keypair.random()
    engine.config = replace(engine.config, approvers=(approver.public_key,))

    def approve() -> None:
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

    approve()
    old_document = {"code_version": "x", "payment_count": 8, "period_offset": 1, "receipts_merkle_root": "00"}
    with session_scope(db) as session:
        session.execute(
            update(Approval)
            .where(col(Approval.run_id) == run_id)
            .values(manifest_json=orjson.dumps(old_document).decode(), manifest_sha256="11" * 32)
        )
    with pytest.raises(NotApproved, match="manifest version 1 and no longer count.*payouts approve"):
        engine.pay(run_id)
    # the approved run is approved again (it keeps its status), then it pays
    approve()
    with Session(db) as session:
        assert session.get(Run, run_id).status == RunStatus.APPROVED
    assert engine.pay(run_id).status == RunStatus.PAID
    with Session(db) as session:
        assert session.exec(select(LedgerEvent).where(LedgerEvent.event == "run.paid")).first() is not None
