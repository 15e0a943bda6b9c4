"""Two-tier funding with claimable balances: TFT an unclaimed balance brings back into the hot
payout account when it is reclaimed is swept back to the treasury under the manifest's memo,
and neither `reconcile` nor `runs` reports it as stranded afterwards."""

from __future__ import annotations

import json
import time

import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.ledger.db import make_engine
from payouts.ledger.models import LedgerEvent, Payment, StellarTransaction
from payouts.ledger.outstanding import outstanding
from payouts.periods import Period
from payouts.runs.claimable import NOT_CLAIMED
from payouts.sandbox import running_sandbox
from tests.cli.test_treasury_months import _setup, _tft
from tests.runs.test_chain_scan import restored_copy
from tests.support.network_time import takeover_waits_passed

runner = CliRunner()
WINDOW_DAYS = 30
OFFSET = 81


def _ok(args: list[str]):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (args, result.output)
    return result


def test_a_reclaimed_balance_goes_back_to_the_treasury_once(monkeypatch, tmp_path, ledger_url):
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        document, client, _signers, month = _setup(monkeypatch, tmp_path, sandbox, ledger_url)
        monkeypatch.setenv("PAYOUTS_CLAIMABLE_FOR_NO_TRUSTLINE", "true")
        monkeypatch.setenv("PAYOUTS_CLAIMABLE_RECLAIM_AFTER_DAYS", str(WINDOW_DAYS))
        asset = (document["asset"]["code"], document["asset"]["issuer"])
        payout, treasury = document["payout"]["public_key"], document["treasury"]["public_key"]
        no_trustline = document["farmers"][-1]["public_key"]
        db = make_engine(ledger_url)
        label = Period(OFFSET).label

        run_id = month.calculate(OFFSET)
        funding = month.fund(run_id)
        _ok(["pay", str(run_id)])
        with Session(db) as session:
            sent = session.exec(
                select(Payment).where(Payment.run_id == run_id, Payment.destination == no_trustline)
            ).all()
        assert sent and {p.status for p in sent} == {"claimable"}
        sent_units = sum(p.amount_tft_units for p in sent)
        reconciled = json.loads(_ok(["reconcile", "--period", label, "--json"]).stdout)
        assert reconciled["clean"] and reconciled["sweep"]["state"] == "nothing to sweep", reconciled["sweep"]
        assert _tft(client, payout, asset) == 0  # the balances left the hot account on time
        treasury_before = _tft(client, treasury, asset)

        sandbox.chain.advance_clock(WINDOW_DAYS * 86_400 + 60)
        deadline = time.monotonic() + 10
        while client.latest_ledger().closed_at <= max(p.claimable_until for p in sent):
            assert time.monotonic() < deadline, "the sandbox closed no ledger past the window"
            time.sleep(0.05)
        reclaimed = json.loads(_ok(["reclaim", str(run_id), "--json"]).stdout)
        assert (reclaimed["state"], reclaimed["reclaimed"]) == ("reclaimed", len(sent)), reclaimed
        # the reclaim step swept what came back: the hot account holds nothing again
        assert reclaimed["sweep"]["state"] == "swept", reclaimed["sweep"]
        assert reclaimed["sweep"]["amount_tft_units"] == sent_units
        assert _tft(client, payout, asset) == 0
        assert _tft(client, treasury, asset) - treasury_before == sent_units
        with Session(db) as session:
            sweeps = session.exec(
                select(StellarTransaction).where(
                    StellarTransaction.run_id == run_id, StellarTransaction.purpose == "sweep"
                )
            ).all()
        assert len(sweeps) == 1 and sweeps[0].status == "confirmed"
        assert sweeps[0].memo_hash == funding["manifest_sha256"]
        assert sweeps[0].tx_hash == reclaimed["sweep"]["tx_hash"]

        # afterwards nothing is stranded and nothing moves twice
        again = json.loads(_ok(["reconcile", "--period", label, "--json"]).stdout)
        assert again["clean"] and again["sweep"]["state"] == "already swept", again["sweep"]
        assert again["sweep"]["amount_tft_units"] == sent_units
        assert again["payout_surplus_tft_units"] == 0
        listed = _ok(["runs"])
        assert "no open run needs" not in listed.stderr
        twice = json.loads(_ok(["reclaim", str(run_id), "--json"]).stdout)
        assert twice["state"] == "nothing due" and "sweep" not in twice
        assert _tft(client, treasury, asset) - treasury_before == sent_units
        statement = json.loads(_ok(["statement", "--period", label, "--json"]).stdout)
        assert statement["balances"] is True, statement
        client.close()


def _pay_with_balances(monkeypatch, tmp_path, sandbox, ledger_url):
    """A two-tier month whose farmer without a trustline is paid by claimable balances."""
    document, client, _signers, month = _setup(monkeypatch, tmp_path, sandbox, ledger_url)
    monkeypatch.setenv("PAYOUTS_CLAIMABLE_FOR_NO_TRUSTLINE", "true")
    monkeypatch.setenv("PAYOUTS_CLAIMABLE_RECLAIM_AFTER_DAYS", str(WINDOW_DAYS))
    run_id = month.calculate(OFFSET)
    funding = month.fund(run_id)
    _ok(["pay", str(run_id)])
    no_trustline = document["farmers"][-1]["public_key"]
    with Session(make_engine(ledger_url)) as session:
        sent = list(
            session.exec(select(Payment).where(Payment.run_id == run_id, Payment.destination == no_trustline)).all()
        )
    assert sent and {p.status for p in sent} == {"claimable"}
    asset = (document["asset"]["code"], document["asset"]["issuer"])
    payout, treasury = document["payout"]["public_key"], document["treasury"]["public_key"]
    return client, run_id, funding, sent, asset, payout, treasury, sum(p.amount_tft_units for p in sent)


def _pass_the_window(sandbox, client, sent) -> None:
    sandbox.chain.advance_clock(WINDOW_DAYS * 86_400 + 60)
    deadline = time.monotonic() + 10
    while client.latest_ledger().closed_at <= max(p.claimable_until for p in sent):
        assert time.monotonic() < deadline, "the sandbox closed no ledger past the window"
        time.sleep(0.05)


def _sweeps(url: str, run_id: int) -> list[StellarTransaction]:
    with Session(make_engine(url)) as session:
        return list(
            session.exec(
                select(StellarTransaction).where(
                    StellarTransaction.run_id == run_id, StellarTransaction.purpose == "sweep"
                )
            ).all()
        )


def _sweeps_on_chain(client, payout: str, treasury: str) -> list[dict]:
    return [
        r for r in client.payments(payout) if r.get("type") == "payment" and (r["from"], r["to"]) == (payout, treasury)
    ]


def test_a_reclaim_before_the_run_is_reconciled_is_swept_by_the_next_reconcile(monkeypatch, tmp_path, ledger_url):
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        client, run_id, funding, sent, asset, payout, treasury, sent_units = _pay_with_balances(
            monkeypatch, tmp_path, sandbox, ledger_url
        )
        label = Period(OFFSET).label
        assert _tft(client, payout, asset) == 0
        treasury_before = _tft(client, treasury, asset)

        # reclaimed while the run is still `paid`: nothing to sweep yet, the TFT waits in the hot account
        _pass_the_window(sandbox, client, sent)
        reclaimed = json.loads(_ok(["reclaim", str(run_id), "--json"]).stdout)
        assert (reclaimed["state"], reclaimed["reclaimed"]) == ("reclaimed", len(sent)), reclaimed
        assert reclaimed["sweep"]["state"] == "not reconciled", reclaimed["sweep"]
        assert _tft(client, payout, asset) == sent_units
        assert _tft(client, treasury, asset) == treasury_before
        assert _sweeps(ledger_url, run_id) == []

        # the next reconcile sweeps exactly what came back, under the manifest's memo
        reconciled = json.loads(_ok(["reconcile", "--period", label, "--json"]).stdout)
        assert reconciled["clean"], reconciled
        assert reconciled["sweep"]["state"] == "swept", reconciled["sweep"]
        assert reconciled["sweep"]["amount_tft_units"] == sent_units
        assert _tft(client, payout, asset) == 0
        assert _tft(client, treasury, asset) - treasury_before == sent_units
        sweeps = _sweeps(ledger_url, run_id)
        assert [(s.status, s.memo_hash) for s in sweeps] == [("confirmed", funding["manifest_sha256"])]
        on_chain = _sweeps_on_chain(client, payout, treasury)
        assert [r["transaction_hash"] for r in on_chain] == [sweeps[0].tx_hash]

        # a second reconcile moves nothing
        sequence = client.account(payout).sequence
        again = json.loads(_ok(["reconcile", "--period", label, "--json"]).stdout)
        assert again["clean"] and again["sweep"]["state"] == "already swept", again["sweep"]
        assert again["payout_surplus_tft_units"] == 0
        assert client.account(payout).sequence == sequence
        assert _tft(client, treasury, asset) - treasury_before == sent_units
        assert len(_sweeps(ledger_url, run_id)) == 1 and len(_sweeps_on_chain(client, payout, treasury)) == 1
        statement = json.loads(_ok(["statement", "--period", label, "--json"]).stdout)
        assert statement["balances"] is True and statement["swept_back_units"] == sent_units, statement
        client.close()


@pytest.mark.parametrize("then", ["reclaim", "reconcile"])
def test_a_reclaim_the_restored_ledger_lost_is_adopted_once(monkeypatch, tmp_path, ledger_url, then):
    """The backup was taken before `reclaim`; the chain has the reclaim and its sweep, the
    restored ledger still says the balances wait to be claimed."""
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        client, run_id, funding, sent, asset, payout, treasury, sent_units = _pay_with_balances(
            monkeypatch, tmp_path, sandbox, ledger_url
        )
        label = Period(OFFSET).label
        assert json.loads(_ok(["reconcile", "--period", label, "--json"]).stdout)["clean"]
        treasury_before = _tft(client, treasury, asset)
        before_reclaim = restored_copy(ledger_url, tmp_path)

        _pass_the_window(sandbox, client, sent)
        reclaimed = json.loads(_ok(["reclaim", str(run_id), "--json"]).stdout)
        assert (reclaimed["state"], reclaimed["sweep"]["state"]) == ("reclaimed", "swept"), reclaimed
        swept_hash = reclaimed["sweep"]["tx_hash"]
        assert _tft(client, treasury, asset) - treasury_before == sent_units

        # the operator restores the backup and recovers the run: the chain scan stops at nothing
        monkeypatch.setenv("PAYOUTS_DATABASE_URL", before_reclaim)
        with Session(make_engine(before_reclaim)) as session:
            assert {session.get(Payment, p.id).status for p in sent} == {"claimable"}
        with takeover_waits_passed(sandbox, before_reclaim) as waited_for:
            recovered = runner.invoke(app, ["recover", str(run_id)])
        assert recovered.exit_code == 0, recovered.output
        assert len(waited_for) == 1, waited_for  # the restored ledger's payer took the claim over
        sequence = client.account(payout).sequence

        if then == "reclaim":
            adopted = json.loads(_ok(["reclaim", str(run_id), "--json"]).stdout)
            assert (adopted["state"], adopted["reclaimed"]) == ("adopted", len(sent)), adopted
            assert adopted["tx_hash"] == reclaimed["tx_hash"]
            assert "nothing sent" in adopted["message"]
            assert adopted["sweep"]["state"] == "adopted" and adopted["sweep"]["tx_hash"] == swept_hash
        reconciled = json.loads(_ok(["reconcile", "--period", label, "--json"]).stdout)
        assert reconciled["clean"], reconciled
        if then == "reconcile":
            assert reconciled["claimable_balances"]["reclaimed"] == len(sent)
            assert reconciled["sweep"]["state"] == "adopted" and reconciled["sweep"]["tx_hash"] == swept_hash
        else:
            assert reconciled["sweep"]["state"] == "already swept", reconciled["sweep"]
        # nothing sent by the restored ledger: no second reclaim, no second sweep
        assert client.account(payout).sequence == sequence
        assert _tft(client, treasury, asset) - treasury_before == sent_units
        assert _tft(client, payout, asset) == 0
        assert [r["transaction_hash"] for r in _sweeps_on_chain(client, payout, treasury)] == [swept_hash]
        sweeps = _sweeps(before_reclaim, run_id)
        assert [(s.status, s.tx_hash, s.memo_hash) for s in sweeps] == [
            ("confirmed", swept_hash, funding["manifest_sha256"])
        ]

        # each receipt is owed again exactly once, and asking again changes nothing
        twice = json.loads(_ok(["reclaim", str(run_id), "--json"]).stdout)
        assert twice["state"] == "nothing due" and "sweep" not in twice, twice
        assert client.account(payout).sequence == sequence
        with Session(make_engine(before_reclaim)) as session:
            rows = [session.get(Payment, p.id) for p in sent]
            owed = [e for e in outstanding(session) if e.destination == sent[0].destination]
            events = session.exec(select(LedgerEvent).where(LedgerEvent.event == "payment.reclaimed")).all()
        assert {(p.status, p.hold_reason) for p in rows} == {("held", NOT_CLAIMED)}
        assert sorted(e.amount_tft_units for e in owed) == sorted(p.amount_tft_units for p in sent)
        assert sorted(e.entity_id for e in events) == sorted(p.id for p in sent)
        statement = json.loads(_ok(["statement", "--period", label, "--json"]).stdout)
        assert statement["balances"] is True and statement["swept_back_units"] == sent_units, statement
        client.close()


def test_only_a_payment_back_to_the_treasury_under_a_manifest_hash_passes_the_scan_as_a_sweep(
    monkeypatch, tmp_path, ledger_url
):
    """The scan leaves a lost sweep to the sweep step; anything else from the payout account
    still stops the run: TFT to the treasury under another memo, or to anyone else under the
    manifest's memo."""
    from stellar_sdk import Account as SdkAccount
    from stellar_sdk import Asset as SdkAsset
    from stellar_sdk import Keypair, TransactionBuilder

    from payouts.money import format_tft

    with running_sandbox(ledger_close_s=0.1) as sandbox:
        document, client, _signers, month = _setup(monkeypatch, tmp_path, sandbox, ledger_url)
        payout = Keypair.from_secret(document["payout"]["secret"])
        treasury = document["treasury"]["public_key"]
        stranger = document["farmers"][0]["public_key"]
        run_id = month.calculate(OFFSET)
        funding = month.fund(run_id)
        _ok(["pay", str(run_id)])  # the held farmer's share stays in the payout account
        asset = SdkAsset(document["asset"]["code"], document["asset"]["issuer"])
        manifest = bytes.fromhex(funding["manifest_sha256"])
        sent = []
        for destination, memo in ((treasury, bytes(32)), (stranger, manifest)):
            account = client.account(payout.public_key)
            envelope = (
                TransactionBuilder(SdkAccount(payout.public_key, account.sequence), document["network_passphrase"], 100)
                .add_hash_memo(memo)
                .append_payment_op(destination, asset, format_tft(1))
                .add_time_bounds(0, 0)
                .build()
            )
            envelope.sign(payout)
            landed = client.submit(envelope.to_xdr())
            assert landed.outcome == "success", landed
            sent.append(landed.tx_hash)
        stopped = runner.invoke(app, ["recover", str(run_id)])
        words = " ".join(stopped.output.split())
        assert stopped.exit_code == 1, stopped.output
        assert all(f"chain transaction {tx_hash}" in words for tx_hash in sent), (
            sent,
            stopped.output,
            repr(stopped.exception),
        )
        assert words.count("matches nothing this ledger knows") == 2
        client.close()
