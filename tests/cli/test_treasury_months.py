"""Two months of two-tier payouts with a multisig treasury and a farm without a TFT trustline:
the hot payout account ends each reconciled month holding only what is in flight, the held
payment is funded once per run that pays it and swept back otherwise, and each period's
statement balances to the unit."""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session, select
from stellar_sdk import Keypair
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.ledger.db import make_engine
from payouts.ledger.models import Payment, StellarTransaction
from payouts.money import parse_tft
from payouts.periods import Period
from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import init_sandbox
from payouts.sandbox.faults import SubmitFault
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.keys import write_keypair
from tests import factories
from tests.runs.test_chain_scan import restored_copy
from tests.support.payments import make_treasury_multisig

runner = CliRunner()
MONTHS = (81, 82)


def _snapshot(tmp_path, farmers: list[dict], offset: int):
    farms = [
        {
            "farm_id": 100 + index,
            "name": f"farm {100 + index}",
            "twin_id": 7,
            "certification": "NotCertified",
            "stellar_address": farmer["public_key"],
        }
        for index, farmer in enumerate(farmers)
    ]
    nodes = [factories.node((100 + i) * 10 + n, farm_id=100 + i) for i in range(len(farmers)) for n in range(2)]
    return factories.write(
        tmp_path / f"month-{offset}.json", factories.snapshot(period_offset=offset, nodes=nodes, farms=farms)
    )


def _tft(client: HorizonClient, account: str, asset: tuple[str, str]) -> int:
    line = client.account(account).trustline(*asset)
    return line.balance_units if line is not None else 0


def _ok(args: list[str]):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (args, result.output)
    return result


class Month:
    """One operator's month through the CLI: calculate, approve, fund (2 of 2), pay, reconcile."""

    def __init__(self, tmp_path, document, approver_key, signer_keys) -> None:
        self.tmp_path, self.document = tmp_path, document
        self.approver_key, self.signer_keys = approver_key, signer_keys

    def calculate(self, offset: int) -> int:
        snapshot = _snapshot(self.tmp_path, self.document["farmers"], offset)
        run_id = json.loads(_ok(["calculate", "-s", str(snapshot), "--json"]).stdout)["run_id"]
        _ok(["approve", str(run_id), "-k", str(self.approver_key), "-y"])
        return run_id

    def fund(self, run_id: int) -> dict:
        funding_file = self.tmp_path / f"funding-{run_id}.json"
        _ok(["funding", "export", str(run_id), "--out", str(funding_file)])
        for key in self.signer_keys:
            _ok(["funding", "sign", str(funding_file), "-k", str(key), "-y"])
        submitted = _ok(["funding", "submit", str(funding_file)])
        assert "funded" in submitted.stderr
        return json.loads(funding_file.read_text())


def _setup(monkeypatch, tmp_path, sandbox, url):
    accounts = tmp_path / "accounts.json"
    document = init_sandbox(sandbox.url, accounts, farmers=3, without_trustline=1, channels=1).document
    client = HorizonClient(sandbox.url)
    signers = [Keypair.random(), Keypair.random()]
    make_treasury_multisig(client, document, signers)
    signer_keys = []
    for index, signer in enumerate(signers):
        write_keypair(tmp_path / f"signer{index}.key", signer)
        signer_keys.append(tmp_path / f"signer{index}.key")
    approver = Keypair.random()
    write_keypair(tmp_path / "approver.key", approver)
    for key, value in {
        "PAYOUTS_DATABASE_URL": url,
        "PAYOUTS_STELLAR_ACCOUNTS_FILE": str(accounts),
        "PAYOUTS_HORIZON_URL": sandbox.url,
        "PAYOUTS_APPROVERS": approver.public_key,
        "PAYOUTS_TWO_TIER": "true",
        "PAYOUTS_TREASURY_ACCOUNT": document["treasury"]["public_key"],
        "PAYOUTS_TX_TIMEOUT_S": "30",
    }.items():
        monkeypatch.setenv(key, value)
    month = Month(tmp_path, document, tmp_path / "approver.key", signer_keys)
    return document, client, signers, month


def test_two_months_with_a_held_payment_sweep_back_and_balance(monkeypatch, tmp_path, ledger_url):
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        document, client, _signers, month = _setup(monkeypatch, tmp_path, sandbox, ledger_url)
        asset = (document["asset"]["code"], document["asset"]["issuer"])
        payout, treasury = document["payout"]["public_key"], document["treasury"]["public_key"]
        no_trustline = document["farmers"][-1]["public_key"]
        treasury_before = _tft(client, treasury, asset)
        db = make_engine(ledger_url)
        paid_to_farmers = 0
        held_before: list[int] = []  # amounts of the payments held last month
        for offset in MONTHS:
            label = Period(offset).label
            run_id = month.calculate(offset)
            with Session(db) as session:
                payments = session.exec(select(Payment).where(Payment.run_id == run_id)).all()
                run_total = sum(p.amount_tft_units for p in payments)
                held_here = sum(p.amount_tft_units for p in payments if p.destination == no_trustline)
                retries = [p for p in payments if p.kind == "retry"]
            # month 2 retries each of month 1's held receipts once, at its original amount
            assert sorted(p.amount_tft_units for p in retries) == sorted(held_before)
            funding = month.fund(run_id)
            assert funding["amount_tft_units"] == run_total  # the run's total, retries included, once
            assert {s["key"] for s in funding["signers"]} == {s.public_key for s in _signers}
            assert funding["thresholds"]["med_threshold"] == 2
            assert _tft(client, payout, asset) == run_total
            _ok(["pay", str(run_id)])
            reconciled = json.loads(_ok(["reconcile", "--period", label, "--json"]).stdout)
            assert reconciled["clean"] and reconciled["sweep"]["state"] == "swept", reconciled["sweep"]
            assert reconciled["sweep"]["amount_tft_units"] == held_here > 0
            assert reconciled["payout_surplus_tft_units"] == 0
            # nothing in flight once reconciled: the hot account holds no TFT at all
            assert _tft(client, payout, asset) == 0
            again = json.loads(_ok(["reconcile", "--period", label, "--json"]).stdout)
            assert again["sweep"]["state"] == "already swept"
            with Session(db) as session:
                sweeps = session.exec(
                    select(StellarTransaction).where(
                        StellarTransaction.run_id == run_id, StellarTransaction.purpose == "sweep"
                    )
                ).all()
                assert len(sweeps) == 1 and sweeps[0].memo_hash == funding["manifest_sha256"]
            paid_to_farmers += run_total - held_here
            held_before = [p.amount_tft_units for p in payments if p.destination == no_trustline]
            statement = json.loads(_ok(["statement", "--period", label, "--json"]).stdout)
            assert statement["balances"] is True
            assert statement["owed_difference_units"] == 0 and statement["tft_difference_units"] == 0
            assert statement["funding_in_units"] == run_total
            assert statement["swept_back_units"] == held_here
            assert statement["paid_units"] == run_total - held_here
            assert statement["held_out_units"] == held_here
            assert statement["retries_units"] == sum(p.amount_tft_units for p in retries)
            assert statement["fees_stroops"] > 0
            human = _ok(["statement", "--period", label])
            assert "balances" in human.stderr and "held carried forward" in human.stdout
            export_file = tmp_path / f"export-{label}.json"
            _ok(["export", "--period", label, "--format", "json", "--out", str(export_file)])
            in_export = json.loads(export_file.read_text())["statement"]
            beside = json.loads((tmp_path / f"statement-{label}.json").read_text())
            for document in (in_export, beside):
                assert document["balances"] and document["owed_difference_units"] == 0
                assert document["paid_units"] == statement["paid_units"]
                assert document["held_out_units"] == statement["held_out_units"]
        # over both months the treasury paid out exactly what reached farmers: no retry twice
        assert treasury_before - _tft(client, treasury, asset) == paid_to_farmers
        chain_to_farmers = sum(
            parse_tft(r["amount"])
            for r in client.payments(payout)
            if r.get("type") == "payment" and r.get("from") == payout and r.get("to") != treasury
        )
        assert chain_to_farmers == paid_to_farmers
        # an edited ledger (a retry one unit larger than what it retries) does not balance
        with Session(db) as session:
            retry = session.exec(select(Payment).where(Payment.kind == "retry")).first()
            retry.amount_tft_units += 1
            retry_id = retry.id
            session.add(retry)
            session.commit()
        off = runner.invoke(app, ["statement", "--period", Period(MONTHS[1]).label, "--no-chain"])
        assert off.exit_code == 1 and "retries differ from what they retry by 1 units" in " ".join(off.stderr.split())
        # a held receipt recorded as paid while its retry is owed too: owed twice, off by its amount
        with Session(db) as session:
            retry = session.get(Payment, retry_id)
            retry.amount_tft_units -= 1
            original = session.get(Payment, retry.retry_of_payment_id)
            original.status, original.paid_at = "paid", original.created_at
            session.add_all([retry, original])
            session.commit()
            doubled = original.amount_tft_units
        off = runner.invoke(app, ["statement", "--period", Period(MONTHS[1]).label, "--no-chain"])
        assert off.exit_code == 1
        assert f"owed side off by -{doubled} units" in " ".join(off.stderr.split())
        db.dispose()
        client.close()


def test_a_restored_ledger_neither_funds_nor_sweeps_a_run_twice(monkeypatch, tmp_path, ledger_url):
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        document, client, _signers, month = _setup(monkeypatch, tmp_path, sandbox, ledger_url)
        asset = (document["asset"]["code"], document["asset"]["issuer"])
        payout, treasury = document["payout"]["public_key"], document["treasury"]["public_key"]
        run_id = month.calculate(MONTHS[0])
        before_funding = restored_copy(ledger_url, tmp_path)
        funding = month.fund(run_id)
        treasury_funded = _tft(client, treasury, asset)

        # the ledger restored from before the funding: the chain's funding payment is adopted
        monkeypatch.setenv("PAYOUTS_DATABASE_URL", before_funding)
        again = tmp_path / "funding-again.json"
        adopted = _ok(["funding", "export", str(run_id), "--out", str(again)])
        assert "funded already" in adopted.stderr and funding["tx_hash"] in " ".join(adopted.stderr.split())
        assert not again.exists()
        assert json.loads(_ok(["runs", "--json"]).stdout)[0]["status"] == "funded"
        assert _tft(client, treasury, asset) == treasury_funded  # funded once
        assert _tft(client, payout, asset) == funding["amount_tft_units"]
        _ok(["recover", str(run_id)])
        _ok(["pay", str(run_id)])
        before_sweep = restored_copy(before_funding, tmp_path)
        label = Period(MONTHS[0]).label
        swept = json.loads(_ok(["reconcile", "--period", label, "--json"]).stdout)
        assert swept["sweep"]["state"] == "swept"
        treasury_swept = _tft(client, treasury, asset)

        # the ledger restored from before the sweep: the sweep on chain is recognised, not repeated
        monkeypatch.setenv("PAYOUTS_DATABASE_URL", before_sweep)
        recognised = json.loads(_ok(["reconcile", "--period", label, "--json"]).stdout)
        assert recognised["clean"] and recognised["lost_sweeps"] == [swept["sweep"]["tx_hash"]]
        assert recognised["sweep"]["state"] == "adopted"
        assert recognised["sweep"]["tx_hash"] == swept["sweep"]["tx_hash"]
        assert _tft(client, treasury, asset) == treasury_swept
        assert _tft(client, payout, asset) == 0
        statement = json.loads(_ok(["statement", "--period", label, "--json"]).stdout)
        assert statement["balances"] and statement["swept_back_units"] == swept["sweep"]["amount_tft_units"]
        client.close()


def test_funding_files_keep_their_signatures_and_refuse_strangers(monkeypatch, tmp_path, sqlite_url):
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        document, client, signers, month = _setup(monkeypatch, tmp_path, sandbox, sqlite_url)
        run_id = month.calculate(MONTHS[0])
        funding_file = tmp_path / "funding.json"
        _ok(["funding", "export", str(run_id), "--out", str(funding_file)])
        exported = funding_file.read_text()

        stranger = Keypair.random()
        write_keypair(tmp_path / "stranger.key", stranger)
        refused = runner.invoke(app, ["funding", "sign", str(funding_file), "-k", str(tmp_path / "stranger.key"), "-y"])
        assert refused.exit_code == 2 and isinstance(refused.exception, SystemExit)  # no traceback
        words = " ".join(refused.stderr.split())
        assert f"key {stranger.public_key} is not a signer" in words
        assert all(s.public_key in words for s in signers)
        assert stranger.secret not in refused.output
        assert funding_file.read_text() == exported  # nothing written

        first = _ok(["funding", "sign", str(funding_file), "-k", str(month.signer_keys[0]), "-y"])
        assert "weigh 1 of the 2" in " ".join(first.stderr.split())
        signed_once = funding_file.read_text()
        twice = _ok(["funding", "sign", str(funding_file), "-k", str(month.signer_keys[0]), "-y"])
        assert "has signed this funding transaction already" in " ".join(twice.stderr.split())
        assert funding_file.read_text() == signed_once

        # exporting again over collected signatures is refused, unless --force
        kept = runner.invoke(app, ["funding", "export", str(run_id), "--out", str(funding_file)])
        assert kept.exit_code == 1 and "collected signature" in kept.stderr
        assert signers[0].public_key in " ".join(kept.stderr.split())
        assert funding_file.read_text() == signed_once
        _ok(["funding", "export", str(run_id), "--out", str(funding_file), "--force"])
        assert json.loads(funding_file.read_text())["envelope_xdr"] == json.loads(exported)["envelope_xdr"]

        # both sign; then the treasury drops the second signer on chain: submit checks the chain again
        for key in month.signer_keys:
            _ok(["funding", "sign", str(funding_file), "-k", str(key), "-y"])
        _drop_signer(client, document, signers, signers[1])
        short = runner.invoke(app, ["funding", "submit", str(funding_file)])
        words = " ".join(short.stderr.split())
        assert short.exit_code == 1 and "not treasury signers on chain" in words
        assert signers[1].public_key in words and "changed since the file was exported" in words
        client.close()


def _drop_signer(client: HorizonClient, document: dict, signers: list[Keypair], dropped: Keypair) -> None:
    from stellar_sdk import Account as SdkAccount
    from stellar_sdk import Signer, TransactionBuilder

    treasury = document["treasury"]["public_key"]
    envelope = (
        TransactionBuilder(
            SdkAccount(treasury, client.account(treasury).sequence), document["network_passphrase"], base_fee=100
        )
        .append_set_options_op(low_threshold=1, med_threshold=1, high_threshold=1)
        .append_set_options_op(signer=Signer.ed25519_public_key(dropped.public_key, 0))
        .set_timeout(60)
        .build()
    )
    for signer in signers:
        envelope.sign(signer)
    result = client.submit(envelope.to_xdr())
    assert result.outcome == "success", result.result_codes


@pytest.mark.parametrize("fault", [SubmitFault.drop_after_apply, SubmitFault.timeout_without_apply])
def test_a_sweep_whose_answer_is_lost_lands_once(monkeypatch, tmp_path, sqlite_url, fault):
    """The sweep's submission answers nothing useful (applied and the connection dropped, or a
    504 before it was queued): it is looked up by hash and only its identical bytes are sent
    again, so exactly one sweep reaches the chain."""
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        document, client, _signers, month = _setup(monkeypatch, tmp_path, sandbox, sqlite_url)
        asset = (document["asset"]["code"], document["asset"]["issuer"])
        payout, treasury = document["payout"]["public_key"], document["treasury"]["public_key"]
        run_id = month.calculate(MONTHS[0])
        month.fund(run_id)
        _ok(["pay", str(run_id)])
        left = _tft(client, payout, asset)
        assert left > 0  # the held payments' share
        sandbox.faults.force(fault)
        swept = json.loads(_ok(["reconcile", "--period", Period(MONTHS[0]).label, "--json"]).stdout)
        assert sandbox.faults.injected == {fault.value: 1}
        assert swept["sweep"]["state"] == "swept" and swept["sweep"]["amount_tft_units"] == left
        back = [
            r
            for r in client.payments(payout)
            if r.get("type") == "payment" and r.get("from") == payout and r.get("to") == treasury
        ]
        assert [r["transaction_hash"] for r in back] == [swept["sweep"]["tx_hash"]]
        assert _tft(client, payout, asset) == 0
        client.close()
