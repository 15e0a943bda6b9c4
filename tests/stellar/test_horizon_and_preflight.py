"""The Horizon client and preflight against the sandbox network over HTTP."""

from __future__ import annotations

import pytest
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Asset as SdkAsset
from stellar_sdk import Keypair, TransactionBuilder

from payouts.money import format_tft
from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import init_sandbox
from payouts.stellar.horizon import CodeBucket, HorizonClient, Outcome, classify
from payouts.stellar.preflight import Asset, PreflightError, check_destinations, check_payout_account

TFT = 10**7


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    folder = tmp_path_factory.mktemp("net")
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        accounts = init_sandbox(sandbox.url, folder / "accounts.json", farmers=4, without_trustline=1)
        with HorizonClient(sandbox.url) as client:
            yield sandbox, accounts.document, client


def _asset(document) -> Asset:
    return Asset(document["asset"]["code"], document["asset"]["issuer"])


def _pay(client, document, source_key, destination, amount_units, memo_hash=None):
    source = Keypair.from_secret(document[source_key]["secret"])
    account = client.account(source.public_key)
    builder = TransactionBuilder(
        SdkAccount(source.public_key, account.sequence), document["network_passphrase"], base_fee=100
    )
    builder.append_payment_op(
        destination, SdkAsset(document["asset"]["code"], document["asset"]["issuer"]), format_tft(amount_units)
    )
    if memo_hash is not None:
        builder.add_hash_memo(memo_hash)
    envelope = builder.set_timeout(60).build()
    envelope.sign(source)
    return envelope


def test_account_balances_and_missing_account(network):
    _, document, client = network
    treasury = client.account(document["treasury"]["public_key"])
    line = treasury.trustline(document["asset"]["code"], document["asset"]["issuer"])
    assert line.balance_units == document["treasury_tft_units"] and line.is_authorized
    assert treasury.native_balance_stroops > 0 and treasury.sequence > 0
    assert client.account(Keypair.random().public_key) is None


def test_submit_success_then_lookup_and_payments_page(network):
    _, document, client = network
    memo = bytes(range(32))
    envelope = _pay(client, document, "treasury", document["payout"]["public_key"], 1000 * TFT, memo)
    result = client.submit(envelope.to_xdr())
    assert result.outcome == Outcome.SUCCESS and result.tx_hash == envelope.hash_hex()
    info = client.transaction(result.tx_hash)
    assert info.successful and info.ledger == result.ledger and info.memo_type == "hash"
    # resubmitting the identical bytes is answered from the ledger, not applied twice
    again = client.submit(envelope.to_xdr())
    assert again.outcome == Outcome.SUCCESS and again.ledger == result.ledger
    payout = client.account(document["payout"]["public_key"])
    assert payout.trustline(document["asset"]["code"], document["asset"]["issuer"]).balance_units == 1000 * TFT
    records = list(client.payments(document["payout"]["public_key"], limit=2))
    assert any(r.get("transaction_hash") == result.tx_hash for r in records)
    assert client.transaction("00" * 32) is None


def test_failed_submission_carries_codes_in_the_right_bucket(network):
    _, document, client = network
    stranger = next(f for f in document["farmers"] if not f["trustline"])["public_key"]
    envelope = _pay(client, document, "treasury", stranger, TFT)
    result = client.submit(envelope.to_xdr())
    assert result.outcome == Outcome.FAILED
    assert result.result_codes["operations"] == ["op_no_trust"]
    assert classify(result.result_codes) == CodeBucket.DESTINATION


@pytest.mark.parametrize(
    ("codes", "bucket"),
    [
        ({"transaction": "tx_failed", "operations": ["op_success", "op_no_trust"]}, CodeBucket.DESTINATION),
        ({"transaction": "tx_failed", "operations": ["op_no_trust", "op_underfunded"]}, CodeBucket.RUN),
        ({"transaction": "tx_bad_auth"}, CodeBucket.RUN),
        ({"transaction": "tx_insufficient_balance"}, CodeBucket.RUN),
        ({"transaction": "tx_bad_seq"}, CodeBucket.RETRY),
        ({"transaction": "tx_insufficient_fee"}, CodeBucket.RETRY),
        ({"transaction": "tx_too_late"}, CodeBucket.EXPIRED),
        ({"transaction": "tx_fee_bump_inner_failed", "inner_transaction": "tx_bad_auth_extra"}, CodeBucket.RUN),
        ({"transaction": "tx_malformed"}, CodeBucket.OTHER),
    ],
)
def test_result_code_buckets(codes, bucket):
    assert classify(codes) == bucket


def test_timeout_and_dropped_connection_are_unknown_never_failed(network):
    sandbox, document, client = network
    from payouts.sandbox.faults import SubmitFault

    for fault in (SubmitFault.drop_after_apply, SubmitFault.timeout_after_apply):
        envelope = _pay(client, document, "treasury", document["payout"]["public_key"], TFT)
        sandbox.faults.force(fault)
        result = client.submit(envelope.to_xdr())
        assert result.outcome == Outcome.UNKNOWN, fault
        # applied all the same: the hash tells
        sandbox.wait_for_ledger(sandbox.chain.latest.sequence + 1)
        assert client.transaction(envelope.hash_hex()).successful


def test_preflight_holds_destinations_that_cannot_receive(network):
    _, document, client = network
    asset = _asset(document)
    farmers = document["farmers"]
    with_line = [f["public_key"] for f in farmers if f["trustline"]]
    without_line = [f["public_key"] for f in farmers if not f["trustline"]]
    missing = Keypair.random().public_key
    huge = 10**12 * TFT  # more than a default trustline limit leaves room for
    held = check_destinations(
        client,
        asset,
        [(with_line[0], TFT), (with_line[1], huge), (with_line[1], huge), (without_line[0], TFT), (missing, TFT)],
    )
    assert held == {with_line[1]: "line_full", without_line[0]: "no_trustline", missing: "no_account"}


def test_preflight_stops_an_underfunded_run_with_a_clear_error(network):
    _, document, client = network
    asset = _asset(document)
    payout = document["payout"]["public_key"]
    balance = client.account(payout).trustline(asset.code, asset.issuer).balance_units
    check_payout_account(client, payout, asset, total_units=balance, fee_budget_stroops=10_000)
    with pytest.raises(PreflightError, match="short by 0.0000001"):
        check_payout_account(client, payout, asset, total_units=balance + 1, fee_budget_stroops=10_000)
    with pytest.raises(PreflightError, match="fees need"):
        check_payout_account(client, payout, asset, total_units=0, fee_budget_stroops=10**15)
    with pytest.raises(PreflightError, match="does not exist"):
        check_payout_account(client, Keypair.random().public_key, asset, total_units=0, fee_budget_stroops=0)
