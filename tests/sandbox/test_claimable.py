"""Claimable balances as stellar-core applies them: the id core computes, the creator's
reserve per claimant, predicates checked against the ledger's close time, a claim needing a
trustline, and Horizon's /claimable_balances records and operation records."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from stellar_sdk import Asset, Claimant, ClaimClaimableBalance, ClaimPredicate, CreateClaimableBalance
from stellar_sdk import xdr as stellar_xdr

from payouts.sandbox import running_sandbox
from payouts.sandbox.claimable import balance_id_hex
from payouts.sandbox.network import BASE_RESERVE_STROOPS
from tests.sandbox.conftest import make_net
from tests.sandbox.test_rules import codes

WINDOW_S = 3600


@pytest.fixture
def parties(net):
    payer, farmer = net.new_accounts(2)
    issuer, asset = net.issue(payer)
    net.submit(net.signed(net.builder(issuer).append_payment_op(payer.public_key, asset, "1000"), issuer))
    return payer, farmer, issuer, asset


def _create(net, payer, farmer, asset, amount="12.5", window_s=WINDOW_S):
    claimants = [
        Claimant(farmer.public_key, ClaimPredicate.predicate_unconditional()),
        Claimant(
            payer.public_key,
            ClaimPredicate.predicate_not(ClaimPredicate.predicate_before_relative_time(window_s)),
        ),
    ]
    builder = net.builder(payer).add_text_memo("receipt")
    builder.append_operation(CreateClaimableBalance(asset, amount, claimants))
    envelope = net.signed(builder, payer)
    result = net.submit(envelope)
    return envelope, result


def _claim(net, keypair, balance_id, timeout_s=300):
    builder = net.builder(keypair, timeout_s=timeout_s).append_operation(ClaimClaimableBalance(balance_id))
    return net.signed(builder, keypair)


def test_create_holds_the_amount_and_one_reserve_per_claimant(net, parties):
    payer, farmer, _issuer, asset = parties
    native_before = Decimal(net.native_balance(payer))
    envelope, result = _create(net, payer, farmer, asset)
    balance_id = envelope.transaction.get_claimable_balance_id(0)
    tx = envelope.transaction
    assert balance_id == balance_id_hex(payer.public_key, tx.sequence, 0)
    assert balance_id.startswith("00000000") and len(balance_id) == 72
    assert net.balance(payer, asset) == "987.5000000"
    account = net.account(payer)
    assert account["num_sponsoring"] == 2
    # the fee is spent; the two reserves are held, not spent
    assert Decimal(net.native_balance(payer)) == native_before - Decimal("0.00001")

    record = httpx.get(f"{net.sandbox.url}/claimable_balances/{balance_id}").json()
    closed_at = net.horizon.transactions().transaction(result["hash"]).call()["created_at"]
    assert record["id"] == balance_id and record["amount"] == "12.5000000"
    assert record["asset"] == f"TFT:{asset.issuer}" and record["sponsor"] == payer.public_key
    farmer_claim, payer_claim = record["claimants"]
    assert farmer_claim == {"destination": farmer.public_key, "predicate": {"unconditional": True}}
    assert payer_claim["destination"] == payer.public_key
    # the relative time became absolute at the close time of the ledger that made the balance
    reclaim_after = int(payer_claim["predicate"]["not"]["abs_before_epoch"])
    closed_at_s = int(datetime.strptime(closed_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp())
    assert reclaim_after == closed_at_s + WINDOW_S

    listed = httpx.get(f"{net.sandbox.url}/claimable_balances", params={"claimant": farmer.public_key}).json()
    assert [r["id"] for r in listed["_embedded"]["records"]] == [balance_id]
    other = net.new_accounts(1)[0]
    none = httpx.get(f"{net.sandbox.url}/claimable_balances", params={"claimant": other.public_key}).json()
    assert none["_embedded"]["records"] == []

    operations = net.horizon.operations().for_transaction(result["hash"]).call()["_embedded"]["records"]
    (op,) = operations
    assert (op["type"], op["type_i"], op["amount"]) == ("create_claimable_balance", 14, "12.5000000")
    assert [c["destination"] for c in op["claimants"]] == [farmer.public_key, payer.public_key]
    assert op["claimants"][1]["predicate"] == {"not": {"rel_before": str(WINDOW_S)}}
    # the transaction's memo is the balance's memo: it is on the transaction that made it
    assert net.horizon.transactions().transaction(result["hash"]).call()["memo"] == "receipt"
    effects = net.horizon.effects().for_transaction(result["hash"]).call()["_embedded"]["records"]
    assert "claimable_balance_created" in [e["type"] for e in effects]


def test_a_claim_needs_a_trustline_then_pays_the_farmer(net, parties):
    payer, farmer, _issuer, asset = parties
    envelope, _result = _create(net, payer, farmer, asset)
    balance_id = envelope.transaction.get_claimable_balance_id(0)
    assert codes(net.fail(_claim(net, farmer, balance_id))) == {
        "transaction": "tx_failed",
        "operations": ["op_no_trust"],
    }
    net.submit(net.signed(net.builder(farmer).append_change_trust_op(asset), farmer))
    claimed = net.submit(_claim(net, farmer, balance_id))
    assert net.balance(farmer, asset) == "12.5000000"
    assert httpx.get(f"{net.sandbox.url}/claimable_balances/{balance_id}").status_code == 404
    assert net.account(payer)["num_sponsoring"] == 0
    history = httpx.get(f"{net.sandbox.url}/claimable_balances/{balance_id}/operations").json()
    kinds = [(r["type"], r.get("claimant")) for r in history["_embedded"]["records"]]
    assert kinds == [("create_claimable_balance", None), ("claim_claimable_balance", farmer.public_key)]
    operations = net.horizon.operations().for_transaction(claimed["hash"]).call()["_embedded"]["records"]
    assert [(op["type_i"], op["balance_id"]) for op in operations] == [(15, balance_id)]
    # a balance is claimed once
    assert codes(net.fail(_claim(net, farmer, balance_id)))["operations"] == ["op_does_not_exist"]


def test_the_creator_reclaims_only_after_the_window(net, parties):
    payer, farmer, _issuer, asset = parties
    envelope, _result = _create(net, payer, farmer, asset)
    balance_id = envelope.transaction.get_claimable_balance_id(0)
    assert codes(net.fail(_claim(net, payer, balance_id)))["operations"] == ["op_cannot_claim"]
    stranger = net.new_accounts(1)[0]
    assert codes(net.fail(_claim(net, stranger, balance_id)))["operations"] == ["op_cannot_claim"]
    net.sandbox.chain.advance_clock(WINDOW_S + 5)
    # the sandbox's clock moved on, this machine's did not: no time bounds
    net.submit(_claim(net, payer, balance_id, timeout_s=None))
    assert net.balance(payer, asset) == "1000.0000000"
    assert httpx.get(f"{net.sandbox.url}/claimable_balances/{balance_id}").status_code == 404


def test_malformed_and_underfunded_and_low_reserve(net, parties):
    payer, farmer, _issuer, asset = parties
    unconditional = ClaimPredicate.predicate_unconditional()
    twice = [Claimant(farmer.public_key, unconditional), Claimant(farmer.public_key, unconditional)]
    envelope = net.signed(net.builder(payer).append_operation(CreateClaimableBalance(asset, "1", twice)), payer)
    assert codes(net.fail(envelope))["operations"] == ["op_malformed"]
    one = [Claimant(farmer.public_key, unconditional)]
    envelope = net.signed(net.builder(payer).append_operation(CreateClaimableBalance(asset, "1001", one)), payer)
    assert codes(net.fail(envelope))["operations"] == ["op_underfunded"]
    # an account with just its own reserves and the fee cannot hold a claimant's reserve
    poor = net.new_accounts(1, xlm=str(Decimal(3 * BASE_RESERVE_STROOPS) / 10**7 + Decimal("0.0002")))[0]
    net.submit(net.signed(net.builder(poor).append_change_trust_op(asset), poor))
    envelope = net.signed(
        net.builder(poor).append_operation(CreateClaimableBalance(Asset.native(), "0.00001", one)), poor
    )
    assert codes(net.fail(envelope))["operations"] == ["op_low_reserve"]


def test_a_balance_outlives_a_full_stop_and_start(tmp_path):
    with running_sandbox(ledger_close_s=0.1, state_dir=tmp_path) as sandbox:
        net = make_net(sandbox)
        payer, farmer = net.new_accounts(2)
        _issuer, asset = net.issue(payer, farmer)
        net.submit(net.signed(net.builder(_issuer).append_payment_op(payer.public_key, asset, "50"), _issuer))
        envelope, _result = _create(net, payer, farmer, asset, amount="3")
        balance_id = envelope.transaction.get_claimable_balance_id(0)
    with running_sandbox(ledger_close_s=0.1, state_dir=tmp_path) as sandbox:
        net = make_net(sandbox)
        assert httpx.get(f"{sandbox.url}/claimable_balances/{balance_id}").json()["amount"] == "3.0000000"
        assert net.account(payer)["num_sponsoring"] == 2
        net.submit(_claim(net, farmer, balance_id))
        assert net.balance(farmer, asset) == "3.0000000"


def test_the_result_names_the_balance_and_a_failed_transaction_leaves_none(net, parties):
    payer, farmer, _issuer, asset = parties
    envelope, result = _create(net, payer, farmer, asset, amount="2")
    balance_id = envelope.transaction.get_claimable_balance_id(0)
    decoded = stellar_xdr.TransactionResult.from_xdr(result["result_xdr"])
    created = decoded.result.results[0].tr.create_claimable_balance_result
    assert created.balance_id.to_xdr_bytes().hex() == balance_id
    # a later operation fails: the balance, its reserves and the amount are all undone
    one = [Claimant(farmer.public_key, ClaimPredicate.predicate_unconditional())]
    builder = net.builder(payer).append_operation(CreateClaimableBalance(asset, "5", one))
    builder.append_payment_op(farmer.public_key, asset, "1")  # the farmer has no trustline
    failed = net.signed(builder, payer)
    assert codes(net.fail(failed))["operations"] == ["op_success", "op_no_trust"]
    assert net.balance(payer, asset) == "998.0000000"
    assert net.account(payer)["num_sponsoring"] == 2
    listed = httpx.get(f"{net.sandbox.url}/claimable_balances", params={"sponsor": payer.public_key}).json()
    assert [r["id"] for r in listed["_embedded"]["records"]] == [balance_id]


def test_pages_of_balances_follow_their_cursor(net, parties):
    payer, farmer, _issuer, asset = parties
    made = [
        _create(net, payer, farmer, asset, amount=str(n))[0].transaction.get_claimable_balance_id(0) for n in (1, 2, 3)
    ]
    url = f"{net.sandbox.url}/claimable_balances"
    seen: list[str] = []
    page = httpx.get(url, params={"claimant": farmer.public_key, "limit": 2}).json()
    while page["_embedded"]["records"]:
        seen += [record["id"] for record in page["_embedded"]["records"]]
        page = httpx.get(page["_links"]["next"]["href"]).json()
    assert seen == made
    backwards = httpx.get(url, params={"sponsor": payer.public_key, "order": "desc"}).json()
    assert [r["id"] for r in backwards["_embedded"]["records"]] == made[::-1]
    assert httpx.get(url, params={"cursor": "not-a-cursor"}).status_code == 400
    assert httpx.get(url, params={"claimant": "GNOTANACCOUNT"}).status_code == 400
    assert httpx.get(f"{url}/00ff").status_code == 400
