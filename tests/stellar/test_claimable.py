"""Paying by claimable balance against the sandbox over HTTP: the operation a payout to a
destination without a trustline is, and what `read_balance` says became of it."""

from __future__ import annotations

import pytest
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Asset as SdkAsset
from stellar_sdk import ClaimClaimableBalance, Keypair, TransactionBuilder

from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import init_sandbox
from payouts.stellar.build import BuildError
from payouts.stellar.claimable import BalanceState, claimable_balance_op, read_balance
from payouts.stellar.horizon import HorizonClient, Outcome

TFT = 10**7
WINDOW_S = 600


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    folder = tmp_path_factory.mktemp("net")
    with running_sandbox(ledger_close_s=0.1) as sandbox:
        accounts = init_sandbox(sandbox.url, folder / "accounts.json", farmers=2, without_trustline=2)
        document = accounts.document
        with HorizonClient(sandbox.url) as client:
            treasury = Keypair.from_secret(document["treasury"]["secret"])
            asset = SdkAsset(document["asset"]["code"], document["asset"]["issuer"])
            builder = _builder(client, document, treasury.public_key)
            builder.append_payment_op(document["payout"]["public_key"], asset, "1000")
            assert _send(client, builder, treasury).outcome is Outcome.SUCCESS
            yield sandbox, document, client


def _builder(client, document, source, *, timeout_s: int | None = 60) -> TransactionBuilder:
    account = client.account(source)
    builder = TransactionBuilder(SdkAccount(source, account.sequence), document["network_passphrase"], base_fee=100)
    if timeout_s is not None:
        builder.set_timeout(timeout_s)
    return builder


def _send(client, builder, *signers):
    envelope = builder.build()
    for signer in signers:
        envelope.sign(signer)
    return client.submit(envelope.to_xdr())


def _pay_claimable(client, document, farmer: str, amount_units: int) -> str:
    payout = Keypair.from_secret(document["payout"]["secret"])
    builder = _builder(client, document, payout.public_key).add_hash_memo(bytes(range(32)))
    builder.append_operation(
        claimable_balance_op(
            destination=farmer,
            payout_account=payout.public_key,
            asset_code=document["asset"]["code"],
            asset_issuer=document["asset"]["issuer"],
            amount_units=amount_units,
            reclaim_after_s=WINDOW_S,
        )
    )
    envelope = builder.build()
    envelope.sign(payout)
    assert client.submit(envelope.to_xdr()).outcome is Outcome.SUCCESS
    return envelope.transaction.get_claimable_balance_id(0)


def test_the_farmer_claims_once_the_trustline_exists(network):
    _sandbox, document, client = network
    farmer = Keypair.from_secret(document["farmers"][0]["secret"])
    payout_id = document["payout"]["public_key"]
    balance_id = _pay_claimable(client, document, farmer.public_key, 25 * TFT)
    assert read_balance(client, balance_id, payout_id).state is BalanceState.LIVE
    record = client.claimable_balance(balance_id)
    assert record["amount"] == "25.0000000"
    assert [c["destination"] for c in record["claimants"]] == [farmer.public_key, payout_id]

    asset = SdkAsset(document["asset"]["code"], document["asset"]["issuer"])
    assert (
        _send(client, _builder(client, document, farmer.public_key).append_change_trust_op(asset), farmer).outcome
        is Outcome.SUCCESS
    )
    claim = _builder(client, document, farmer.public_key).append_operation(ClaimClaimableBalance(balance_id))
    claimed = _send(client, claim, farmer)
    assert claimed.outcome is Outcome.SUCCESS
    seen = read_balance(client, balance_id, payout_id)
    assert (seen.state, seen.claimant, seen.tx_hash) == (BalanceState.CLAIMED, farmer.public_key, claimed.tx_hash)
    line = client.account(farmer.public_key).trustline(asset.code, asset.issuer)
    assert line.balance_units == 25 * TFT


def test_the_payout_account_reclaims_after_the_window(network):
    sandbox, document, client = network
    farmer_id = document["farmers"][1]["public_key"]
    payout = Keypair.from_secret(document["payout"]["secret"])
    balance_id = _pay_claimable(client, document, farmer_id, 7 * TFT)
    early = _builder(client, document, payout.public_key).append_operation(ClaimClaimableBalance(balance_id))
    refused = _send(client, early, payout)
    assert refused.outcome is Outcome.FAILED and refused.result_codes["operations"] == ["op_cannot_claim"]
    sandbox.chain.advance_clock(WINDOW_S + 1)
    # the sandbox's clock moved on, this machine's did not: no time bounds
    late = _builder(client, document, payout.public_key, timeout_s=None)
    late.append_operation(ClaimClaimableBalance(balance_id))
    reclaimed = _send(client, late, payout)
    assert reclaimed.outcome is Outcome.SUCCESS
    seen = read_balance(client, balance_id, payout.public_key)
    assert (seen.state, seen.claimant) == (BalanceState.RECLAIMED, payout.public_key)


def test_an_unknown_balance_and_what_is_not_built(network):
    _sandbox, document, client = network
    payout_id = document["payout"]["public_key"]
    assert read_balance(client, "00000000" + "ab" * 32, payout_id).state is BalanceState.UNKNOWN
    fields = {"payout_account": payout_id, "asset_code": "TFT", "asset_issuer": document["asset"]["issuer"]}
    with pytest.raises(BuildError, match="reclaim window"):
        claimable_balance_op(destination=Keypair.random().public_key, amount_units=1, reclaim_after_s=0, **fields)
    with pytest.raises(BuildError, match="payout account itself"):
        claimable_balance_op(destination=payout_id, amount_units=1, reclaim_after_s=60, **fields)
    with pytest.raises(BuildError, match="not payable"):
        claimable_balance_op(destination=Keypair.random().public_key, amount_units=0, reclaim_after_s=60, **fields)
