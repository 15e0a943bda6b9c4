"""Two-tier months with claimable balances under attack, through the CLI against the sandbox:
a receipt paid as a claimable balance is corrected before its balance is reclaimed, after it
was reclaimed and after it was claimed, and nothing is paid twice while every statement
balances; and a treasury signer is removed mid-month, after the month's funding collected its
signature: `funding submit` refuses it by name and writes nothing."""

from __future__ import annotations

import json

from sqlmodel import Session, col, select
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Asset as SdkAsset
from stellar_sdk import ClaimClaimableBalance, Keypair, TransactionBuilder
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.ledger.db import make_engine
from payouts.ledger.models import LedgerEvent, Payment, Run, StellarTransaction
from payouts.periods import Period
from payouts.sandbox import running_sandbox
from tests.cli.test_claimable_two_tier import WINDOW_DAYS, _pass_the_window
from tests.cli.test_treasury_months import _drop_signer, _setup, _tft

runner = CliRunner()


def _ok(args: list[str]):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (args, result.output)
    return result


def _payments(db, run_id: int, destination: str | None = None) -> list[Payment]:
    with Session(db) as session:
        statement = select(Payment).where(Payment.run_id == run_id).order_by(col(Payment.id))
        if destination is not None:
            statement = statement.where(Payment.destination == destination)
        return list(session.exec(statement).all())


def _balanced(period_offset: int) -> None:
    statement = json.loads(_ok(["statement", "--period", Period(period_offset).label, "--json"]).stdout)
    assert statement["balances"] is True, statement


def _correct(receipt_hash: str, amount: str, reason: str) -> dict:
    return json.loads(_ok(["correct", receipt_hash, "--amount", amount, "--reason", reason, "--json"]).stdout)


def test_a_claimable_receipt_corrected_before_and_after_reclaim_and_claim_is_paid_once(
    monkeypatch, tmp_path, ledger_url
):
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        document, client, _signers, month = _setup(monkeypatch, tmp_path, sandbox, ledger_url)
        monkeypatch.setenv("PAYOUTS_CLAIMABLE_FOR_NO_TRUSTLINE", "true")
        monkeypatch.setenv("PAYOUTS_CLAIMABLE_RECLAIM_AFTER_DAYS", str(WINDOW_DAYS))
        asset = (document["asset"]["code"], document["asset"]["issuer"])
        payout = document["payout"]["public_key"]
        farmer = document["farmers"][-1]
        db = make_engine(ledger_url)

        # month 1: the farmer without a trustline gets two claimable balances
        first = month.calculate(81)
        month.fund(first)
        _ok(["pay", str(first)])
        _ok(["reconcile", "--period", Period(81).label])
        a, b = _payments(db, first, farmer["public_key"])
        assert {a.status, b.status} == {"claimable"}
        # A is corrected while its balance waits to be claimed: the correction is owed, A is not
        correction_a = _correct(a.receipt_hash, "1.5", "uptime report lost in transit")
        assert correction_a["amount_tft_units"] == 15_000_000

        _pass_the_window(sandbox, client, [a, b])
        reclaimed = json.loads(_ok(["reclaim", str(first), "--json"]).stdout)
        assert (reclaimed["state"], reclaimed["reclaimed"]) == ("reclaimed", 2), reclaimed
        # B is corrected after its balance came back: B is owed (retried) and so is its correction
        correction_b = _correct(b.receipt_hash, "2", "capacity under-reported")
        refused = runner.invoke(app, ["correct", a.receipt_hash, "--amount", "1.5", "--reason", "again"])
        assert refused.exit_code == 2 and "already corrected" in refused.stderr
        _balanced(81)

        # month 2 pays each owed thing once: A and B retried at their amounts, both corrections
        second = month.calculate(82)
        to_farmer = _payments(db, second, farmer["public_key"])
        kinds = sorted((p.kind, p.amount_tft_units) for p in to_farmer if p.kind != "receipt")
        assert kinds == sorted(
            [
                ("correction", correction_a["amount_tft_units"]),
                ("correction", correction_b["amount_tft_units"]),
                ("retry", a.amount_tft_units),
                ("retry", b.amount_tft_units),
            ]
        ), kinds
        funding = month.fund(second)
        assert funding["amount_tft_units"] == sum(p.amount_tft_units for p in _payments(db, second))
        _ok(["pay", str(second)])
        sent = _payments(db, second, farmer["public_key"])
        assert {p.status for p in sent} == {"claimable"}, [(p.kind, p.status) for p in sent]

        # the farmer opens the trustline and claims every balance of month 2
        keypair = Keypair.from_secret(farmer["secret"])
        sdk_asset = SdkAsset(*asset)
        account = client.account(keypair.public_key)
        builder = TransactionBuilder(
            SdkAccount(keypair.public_key, account.sequence), document["network_passphrase"], 100
        ).append_change_trust_op(sdk_asset)
        for payment in sent:
            builder.append_operation(ClaimClaimableBalance(payment.claimable_balance_id))
        envelope = builder.add_time_bounds(0, 0).build()  # the sandbox's clock is a window ahead
        envelope.sign(keypair)
        claimed_all = client.submit(envelope.to_xdr())
        assert claimed_all.outcome == "success", claimed_all
        reconciled = json.loads(_ok(["reconcile", "--period", Period(82).label, "--json"]).stdout)
        assert reconciled["clean"] and reconciled["claimable_balances"]["claimed"] == len(sent), reconciled
        assert {p.status for p in _payments(db, second, farmer["public_key"])} == {"paid"}
        _balanced(82)

        # a claimed receipt corrected: month 3 pays the correction alone, straight to the trustline
        claimed = next(p for p in sent if p.kind == "receipt")
        correction_c = _correct(claimed.receipt_hash, "0.25", "late power report")
        third = month.calculate(83)
        extra = [p for p in _payments(db, third, farmer["public_key"]) if p.kind != "receipt"]
        assert [(p.kind, p.amount_tft_units) for p in extra] == [("correction", correction_c["amount_tft_units"])]
        month.fund(third)
        _ok(["pay", str(third)])
        assert json.loads(_ok(["reconcile", "--period", Period(83).label, "--json"]).stdout)["clean"]
        final = _payments(db, third, farmer["public_key"])
        assert {(p.status, p.delivery) for p in final} == {("paid", "payment")}
        _balanced(83)

        # the farmer holds exactly what months 2 and 3 paid: month 1's balances went back, nothing twice
        owed_units = sum(p.amount_tft_units for p in sent) + sum(p.amount_tft_units for p in final)
        assert _tft(client, farmer["public_key"], asset) == owed_units
        assert _tft(client, payout, asset) == 0
        for receipt_hash in (a.receipt_hash, b.receipt_hash, claimed.receipt_hash):
            with Session(db) as session:
                corrections = session.exec(
                    select(Payment).where(
                        Payment.kind == "correction", col(Payment.idempotency_key).like(f"correction:{receipt_hash}:%")
                    )
                ).all()
            assert len(corrections) == 1 and corrections[0].status == "paid"
        client.close()


def test_a_treasury_signer_removed_mid_month_is_refused_by_name_and_nothing_is_written(
    monkeypatch, tmp_path, ledger_url
):
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        document, client, signers, month = _setup(monkeypatch, tmp_path, sandbox, ledger_url)
        asset = (document["asset"]["code"], document["asset"]["issuer"])
        payout, treasury = document["payout"]["public_key"], document["treasury"]["public_key"]
        db = make_engine(ledger_url)
        first = month.calculate(81)
        month.fund(first)
        _ok(["pay", str(first)])
        _ok(["reconcile", "--period", Period(81).label])

        # month 2's funding collects both signatures; then the treasury removes the second signer
        second = month.calculate(82)
        funding_file = tmp_path / "funding-82.json"
        _ok(["funding", "export", str(second), "--out", str(funding_file)])
        for key in month.signer_keys:
            _ok(["funding", "sign", str(funding_file), "-k", str(key), "-y"])
        removed = signers[1]
        _drop_signer(client, document, signers, removed)
        assert removed.public_key not in {s["key"] for s in client.account(treasury).signers}

        signed = funding_file.read_text()
        with Session(db) as session:
            events = len(session.exec(select(LedgerEvent)).all())
            fundings = [
                (t.tx_hash, t.status)
                for t in session.exec(
                    select(StellarTransaction).where(
                        StellarTransaction.run_id == second, StellarTransaction.purpose == "funding"
                    )
                ).all()
            ]
        balances = (_tft(client, treasury, asset), _tft(client, payout, asset))
        sequence = client.account(treasury).sequence

        refused = runner.invoke(app, ["funding", "submit", str(funding_file)])
        words = " ".join(refused.stderr.split())
        assert refused.exit_code == 1 and isinstance(refused.exception, SystemExit), refused.output  # no traceback
        assert "not treasury signers on chain" in words and removed.public_key in words
        assert signers[0].public_key in words  # who signs now
        # the signer change used the treasury's sequence: this file can never land, and it says so
        assert f"export a new one (`payouts funding export {second} --out FILE --force`)" in words
        assert removed.secret not in refused.output
        # nothing half-written: the file, the ledger and the chain are as they were
        assert funding_file.read_text() == signed
        with Session(db) as session:
            assert session.get(Run, second).status == "funding"
            assert len(session.exec(select(LedgerEvent)).all()) == events
            assert [
                (t.tx_hash, t.status)
                for t in session.exec(
                    select(StellarTransaction).where(
                        StellarTransaction.run_id == second, StellarTransaction.purpose == "funding"
                    )
                ).all()
            ] == fundings
        assert fundings and {status for _hash, status in fundings} == {"built"}
        assert (_tft(client, treasury, asset), _tft(client, payout, asset)) == balances
        assert client.account(treasury).sequence == sequence

        # a new export replaces the transaction that can never land; the removed signer cannot sign
        # it, the remaining signer funds the month
        _ok(["funding", "export", str(second), "--out", str(funding_file), "--force"])
        fresh = json.loads(funding_file.read_text())
        assert fresh["tx_hash"] != fundings[0][0]
        with Session(db) as session:
            old = session.exec(select(StellarTransaction).where(StellarTransaction.tx_hash == fundings[0][0])).one()
            assert old.status == "dead"
        stale = runner.invoke(app, ["funding", "sign", str(funding_file), "-k", str(month.signer_keys[1]), "-y"])
        assert stale.exit_code == 2 and removed.public_key in " ".join(stale.stderr.split())
        _ok(["funding", "sign", str(funding_file), "-k", str(month.signer_keys[0]), "-y"])
        submitted = _ok(["funding", "submit", str(funding_file)])
        assert "funded" in submitted.stderr, submitted.output
        run_total = sum(p.amount_tft_units for p in _payments(db, second))
        assert _tft(client, payout, asset) - balances[1] == run_total
        assert balances[0] - _tft(client, treasury, asset) == run_total
        _ok(["pay", str(second)])
        assert json.loads(_ok(["reconcile", "--period", Period(82).label, "--json"]).stdout)["clean"]
        _balanced(82)
        client.close()
