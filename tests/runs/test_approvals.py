"""Approvals: only configured approvers' valid signatures over the current manifest count.
On SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import os

import pytest
from sqlalchemy import update
from stellar_sdk import Keypair

from payouts.ledger import repository
from payouts.ledger.models import Payment, Run
from payouts.ledger.states import PaymentStatus, RunStatus
from payouts.runs.approvals import (
    ApprovalAlreadyRecorded,
    InvalidSignature,
    NotApproved,
    RunNotApprovable,
    UnknownApprover,
    approve_run,
    build_manifest,
    reject_run,
    require_approved,
    sign_manifest,
    valid_approvals,
)
from payouts.runs.service import calculate_run
from payouts.snapshot.load import load_snapshot
from payouts.stellar.keys import KeyFileError, load_keypair, write_keypair
from payouts.stellar.merkle import merkle_root
from tests import factories


@pytest.fixture
def run(session, tmp_path) -> Run:
    farms = [
        {
            "farm_id": 42,
            "name": "ok farm",
            "twin_id": 7,
            "certification": "NotCertified",
            "stellar_address": factories.EXAMPLE_ADDRESS,
        },
        {"farm_id": 43, "name": "no address", "twin_id": 7, "certification": "NotCertified", "stellar_address": ""},
    ]
    nodes = [factories.node(1), factories.node(2), factories.node(3, farm_id=43)]
    document = factories.snapshot(nodes=nodes, farms=farms)
    outcome = calculate_run(session, load_snapshot(factories.write(tmp_path / "s.json", document)))
    session.commit()
    return outcome.run


@pytest.fixture
def approvers():
    return [Keypair.random() for _ in range(3)]


def _approve(session, run, keypair, approvers, required=2):
    signature = sign_manifest(build_manifest(session, run), keypair)
    return approve_run(
        session,
        run,
        public_key=keypair.public_key,
        signature_b64=signature,
        approvers=[k.public_key for k in approvers],
        required=required,
    )


def test_calculation_creates_payable_and_held_payments(session, run):
    payments = repository.payments_of_run(session, run.id)
    by_node = {p.node_id: p for p in payments}
    assert by_node[1].status == by_node[2].status == PaymentStatus.PENDING
    assert by_node[3].status == PaymentStatus.HELD and by_node[3].hold_reason == "no_address"
    assert not by_node[3].in_manifest
    assert all(p.amount_tft_units > 0 for p in payments)


def test_manifest_is_sorted_compact_json_of_the_payable_payments(session, run):
    from payouts.ledger.identity import ledger_identity
    from payouts.runs.approvals import payment_leaf
    from payouts.runs.derive import Derived
    from payouts.stellar.network import PASSPHRASES

    manifest = build_manifest(session, run)
    payable = [p for p in repository.payments_of_run(session, run.id) if p.in_manifest]
    leaves = [payment_leaf(Derived(p.receipt_hash, p.kind, p.destination, p.amount_tft_units)) for p in payable]
    assert manifest.to_bytes() == (
        b'{"code_version":"%s","format":"payouts-manifest/2","ledger_id":"%s","network_passphrase":"%s",'
        b'"payment_count":2,"payments_merkle_root":"%s","payments_tree":"payouts-payments-tree/1",'
        b'"payout_account":"","period_offset":81,"receipts_merkle_root":"%s","run_id":%d,'
        b'"snapshot_sha256":"%s","total_tft_units":%d}'
        % (
            run.code_version.encode(),
            ledger_identity(session).ledger_id.encode(),
            PASSPHRASES[run.network].encode(),
            merkle_root(leaves).hex().encode(),
            merkle_root([p.receipt_hash for p in payable]).hex().encode(),
            run.id,
            run.snapshot_sha256.encode(),
            sum(p.amount_tft_units for p in payable),
        )
    )


def test_two_valid_approvals_approve_the_run(session, run, approvers):
    assert _approve(session, run, approvers[0], approvers) == 1
    assert run.status == RunStatus.CALCULATED
    with pytest.raises(NotApproved):
        require_approved(session, run, approvers=[k.public_key for k in approvers], required=2)
    assert _approve(session, run, approvers[1], approvers) == 2
    session.commit()
    assert session.get(Run, run.id).status == RunStatus.APPROVED
    manifest = require_approved(session, run, approvers=[k.public_key for k in approvers], required=2)
    assert manifest == build_manifest(session, run)


def test_unknown_approver_is_refused_and_nothing_is_recorded(session, run, approvers):
    stranger = Keypair.random()
    with pytest.raises(UnknownApprover):
        _approve(session, run, stranger, approvers)
    assert repository.approvals_of_run(session, run.id) == []


def test_forged_signature_is_refused(session, run, approvers):
    manifest = build_manifest(session, run)
    forged = sign_manifest(manifest, Keypair.random())  # signed by someone else
    with pytest.raises(InvalidSignature):
        approve_run(
            session,
            run,
            public_key=approvers[0].public_key,
            signature_b64=forged,
            approvers=[k.public_key for k in approvers],
            required=2,
        )
    garbage = base64.b64encode(b"x" * 64).decode()
    with pytest.raises(InvalidSignature):
        approve_run(
            session,
            run,
            public_key=approvers[0].public_key,
            signature_b64=garbage,
            approvers=[k.public_key for k in approvers],
            required=2,
        )


def test_a_change_to_the_run_after_an_approval_voids_it(session, run, approvers):
    _approve(session, run, approvers[0], approvers)
    session.commit()
    keys = [k.public_key for k in approvers]
    assert len(valid_approvals(session, run, keys)) == 1
    # someone edits a payment amount in the ledger
    session.execute(
        update(Payment)
        .where(Payment.run_id == run.id, Payment.node_id == 1)
        .values(amount_tft_units=Payment.amount_tft_units + 1)
    )
    session.commit()
    assert valid_approvals(session, run, keys) == []
    _approve(session, run, approvers[1], approvers)
    assert session.get(Run, run.id).status == RunStatus.CALCULATED  # 1 valid, not 2


def test_the_same_approval_twice_counts_once(session, run, approvers):
    _approve(session, run, approvers[0], approvers)
    with pytest.raises(ApprovalAlreadyRecorded):
        _approve(session, run, approvers[0], approvers)
    assert len(valid_approvals(session, run, [k.public_key for k in approvers])) == 1


def test_a_rejected_run_cannot_be_approved(session, run, approvers):
    reject_run(session, run, "numbers look wrong")
    session.commit()
    assert session.get(Run, run.id).status == RunStatus.REJECTED
    with pytest.raises(RunNotApprovable):
        _approve(session, run, approvers[0], approvers)


def test_key_files_must_be_private_and_valid(tmp_path):
    keypair = Keypair.random()
    path = tmp_path / "approver.key"
    write_keypair(path, keypair)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert load_keypair(path).public_key == keypair.public_key
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="readable by others") as caught:
        load_keypair(path)
    assert keypair.secret not in str(caught.value)
    bad = tmp_path / "bad.key"
    bad.write_text("SNOTAKEY")
    os.chmod(bad, 0o600)
    with pytest.raises(KeyFileError, match="valid Stellar secret") as caught:
        load_keypair(bad)
    assert "SNOTAKEY" not in str(caught.value)
