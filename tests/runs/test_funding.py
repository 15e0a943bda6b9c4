"""Two-tier funding with a multisig treasury on the sandbox: export, sign offline, submit."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest
from sqlmodel import Session, select
from stellar_sdk import Keypair

from payouts.ledger.db import make_engine, session_scope
from payouts.ledger.models import LedgerEvent, Run, StellarTransaction
from payouts.ledger.states import RunStatus
from payouts.ledger.unit_of_work import UnitsOfWork, unit_of_work
from payouts.runs.approvals import approve_run, build_manifest, sign_manifest
from payouts.runs.funding import AlreadySigned, FundingError, FundingFile, export_funding, sign_funding, submit_funding
from payouts.runs.payment import PayConfig, PaymentEngine, RunNotPayable
from payouts.runs.service import calculate_run
from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import init_sandbox
from payouts.sandbox.faults import SubmitFault
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.keys import SigningKeys
from tests.support.payments import check_invariants, grid_snapshot, make_treasury_multisig


def test_a_multisig_treasury_funds_exactly_the_run_total(ledger_url, tmp_path):
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        document = init_sandbox(sandbox.url, tmp_path / "accounts.json", farmers=3, channels=2).document
        client = HorizonClient(sandbox.url)
        alice, bob = Keypair.random(), Keypair.random()
        make_treasury_multisig(client, document, [alice, bob])
        db = make_engine(ledger_url)
        approver = Keypair.random()
        with session_scope(db) as session:
            run = calculate_run(session, grid_snapshot(tmp_path, document["farmers"])).run
            approve_run(
                session,
                run,
                public_key=approver.public_key,
                signature_b64=sign_manifest(build_manifest(session, run), approver),
                approvers=[approver.public_key],
                required=1,
            )
        asset = (document["asset"]["code"], document["asset"]["issuer"])
        config = PayConfig(
            network_passphrase=document["network_passphrase"],
            asset_code=asset[0],
            asset_issuer=asset[1],
            approvers=(approver.public_key,),
            approvals_required=1,
            poll_interval_s=0.1,
            tx_timeout_s=30,
            two_tier=True,
        )
        keys = SigningKeys.from_accounts_file(tmp_path / "accounts.json")
        engine = PaymentEngine(UnitsOfWork(db), client, keys, config)
        with pytest.raises(RunNotPayable, match="not funded"):
            engine.pay(run.id)

        exported = tmp_path / "funding.json"
        with session_scope(db) as session:
            funding = export_funding(
                session,
                session.get(Run, run.id),
                client,
                treasury=document["treasury"]["public_key"],
                payout_account=keys.payout_account,
                asset_code=asset[0],
                asset_issuer=asset[1],
                network_passphrase=document["network_passphrase"],
                approvers=[approver.public_key],
                required=1,
            )
            total = build_manifest(session, session.get(Run, run.id)).total_tft_units
        funding.write(exported)
        assert funding.amount_tft_units == total > 0
        assert "secret" not in exported.read_text()

        # a tampered file is refused before anyone signs it
        tampered = json.loads(exported.read_text())
        tampered["amount_tft_units"] += 10**7
        (tmp_path / "tampered.json").write_text(json.dumps(tampered))
        with pytest.raises(FundingError, match="amount"):
            FundingFile.read(tmp_path / "tampered.json")

        one = sign_funding(FundingFile.read(exported), alice)
        with pytest.raises(FundingError, match="weigh 1; the treasury needs 2"):
            submit_funding(UnitsOfWork(db), one, client)
        outsider = Keypair.random()
        with pytest.raises(FundingError, match=f"key {outsider.public_key} is not a signer of the treasury"):
            sign_funding(one, outsider)  # refused offline, naming the key and the signers
        forged = one.envelope()
        forged.sign(outsider)  # signed past the check, by hand: the chain check still refuses it
        stranger = FundingFile(**{**asdict(one), "envelope_xdr": forged.to_xdr()})
        with pytest.raises(FundingError, match="not treasury signers on chain"):
            submit_funding(UnitsOfWork(db), stranger, client)
        with pytest.raises(AlreadySigned, match=alice.public_key):
            sign_funding(one, alice)

        both = sign_funding(one, bob)
        assert both.tx_hash == funding.tx_hash  # signatures do not change the transaction
        assert submit_funding(UnitsOfWork(db), both, client) == RunStatus.FUNDED
        payout_line = client.account(keys.payout_account).trustline(*asset)
        assert payout_line.balance_units == total

        report = engine.pay(run.id)
        assert report.status == RunStatus.PAID
        check_invariants(db, client, document, run.id)
        assert client.account(keys.payout_account).trustline(*asset).balance_units == 0
        client.close()


def test_exporting_funding_in_a_unit_of_work_that_rolls_back_leaves_nothing_in_the_ledger(ledger_url, tmp_path):
    """The service writes through the caller's unit of work and never commits it."""
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        document = init_sandbox(sandbox.url, tmp_path / "accounts.json", farmers=2, channels=1).document
        db = make_engine(ledger_url)
        approver = Keypair.random()
        with session_scope(db) as session:
            run = calculate_run(session, grid_snapshot(tmp_path, document["farmers"])).run
            approve_run(
                session,
                run,
                public_key=approver.public_key,
                signature_b64=sign_manifest(build_manifest(session, run), approver),
                approvers=[approver.public_key],
                required=1,
            )
        keys = SigningKeys.from_accounts_file(tmp_path / "accounts.json")
        with (
            HorizonClient(sandbox.url) as client,
            pytest.raises(RuntimeError, match="interrupted"),
            unit_of_work(db) as uow,
        ):
            funding = export_funding(
                uow.session,
                uow.session.get(Run, run.id),
                client,
                treasury=document["treasury"]["public_key"],
                payout_account=keys.payout_account,
                asset_code=document["asset"]["code"],
                asset_issuer=document["asset"]["issuer"],
                network_passphrase=document["network_passphrase"],
                approvers=[approver.public_key],
                required=1,
            )
            assert funding.amount_tft_units > 0
            with Session(db) as other:  # not even flushed rows are visible outside the unit
                assert other.exec(select(StellarTransaction)).all() == []
            raise RuntimeError("the operator interrupted the export")
        with Session(db) as session:
            assert session.exec(select(StellarTransaction)).all() == []
            assert session.get(Run, run.id).status == RunStatus.APPROVED
            events = session.exec(select(LedgerEvent.event).where(LedgerEvent.run_id == run.id)).all()
            assert "funding.exported" not in events and "run.funding" not in events
        # the same export in a unit of work that returns is on record
        with HorizonClient(sandbox.url) as client, unit_of_work(db) as uow:
            export_funding(
                uow.session,
                uow.session.get(Run, run.id),
                client,
                treasury=document["treasury"]["public_key"],
                payout_account=keys.payout_account,
                asset_code=document["asset"]["code"],
                asset_issuer=document["asset"]["issuer"],
                network_passphrase=document["network_passphrase"],
                approvers=[approver.public_key],
                required=1,
            )
        with Session(db) as session:
            assert session.get(Run, run.id).status == RunStatus.FUNDING
            assert len(session.exec(select(StellarTransaction)).all()) == 1
        db.dispose()


def test_a_funding_transaction_that_lands_between_its_lookup_and_the_account_read_funds_the_run(ledger_url, tmp_path):
    """Not found by hash, then the ledger including it closes before the treasury is read: its
    own sequence number used proves nothing, and the run is funded, not sent back for a second
    funding transaction."""
    with running_sandbox(ledger_close_s=0.1, faults="delay=0:50", submission_timeout_s=0.5) as sandbox:
        document = init_sandbox(sandbox.url, tmp_path / "accounts.json", farmers=3, channels=2).document
        client = HorizonClient(sandbox.url)
        alice, bob = Keypair.random(), Keypair.random()
        make_treasury_multisig(client, document, [alice, bob])
        db = make_engine(ledger_url)
        approver = Keypair.random()
        with session_scope(db) as session:
            run = calculate_run(session, grid_snapshot(tmp_path, document["farmers"])).run
            approve_run(
                session,
                run,
                public_key=approver.public_key,
                signature_b64=sign_manifest(build_manifest(session, run), approver),
                approvers=[approver.public_key],
                required=1,
            )
            funding = export_funding(
                session,
                session.get(Run, run.id),
                client,
                treasury=document["treasury"]["public_key"],
                payout_account=SigningKeys.from_accounts_file(tmp_path / "accounts.json").payout_account,
                asset_code=document["asset"]["code"],
                asset_issuer=document["asset"]["issuer"],
                network_passphrase=document["network_passphrase"],
                approvers=[approver.public_key],
                required=1,
            )
        signed = sign_funding(sign_funding(funding, alice), bob)
        sandbox.faults.force(SubmitFault.delay)  # 504 after 0.5 s, still queued
        sandbox.faults.force_landing_during_lookup()
        # not found as of a ledger before its bound: the run waits (never "did not land"), and
        # the same file submitted again finds it landed
        assert submit_funding(UnitsOfWork(db), signed, client) in (RunStatus.FUNDING, RunStatus.FUNDED)
        assert sandbox.faults.injected == {"delay": 1, "land_during_lookup": 1}
        assert submit_funding(UnitsOfWork(db), signed, client) == RunStatus.FUNDED
        with Session(db) as session:
            assert session.get(Run, run.id).status == RunStatus.FUNDED
            assert not session.exec(select(LedgerEvent).where(LedgerEvent.event == "funding.not_landed")).all()
        client.close()
