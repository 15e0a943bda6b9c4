"""Every endpoint through stellar-sdk's `Server`: accounts, submit, lookup, paging, ledgers."""

from __future__ import annotations

import base64

import httpx
import pytest
from stellar_sdk import Asset, Keypair
from stellar_sdk import xdr as stellar_xdr
from stellar_sdk.exceptions import NotFoundError

from payouts.sandbox import SANDBOX_NETWORK_PASSPHRASE, root_keypair


def test_root_reports_the_latest_ledger_and_passphrase(net):
    root = net.horizon.root().call()
    assert root["network_passphrase"] == SANDBOX_NETWORK_PASSPHRASE
    latest = net.horizon.ledgers().order(desc=True).limit(1).call()["_embedded"]["records"][0]
    assert root["history_latest_ledger"] <= latest["sequence"] + 1
    assert latest["base_fee_in_stroops"] == 100 and latest["closed_at"].endswith("Z")


def test_load_account_and_submit_a_payment(net):
    alice, bob = net.new_accounts(2)
    account = net.horizon.load_account(alice.public_key)
    envelope = net.signed(
        net.builder(alice).append_payment_op(bob.public_key, Asset.native(), "12.5").add_text_memo("hello"), alice
    )
    record = net.submit(envelope)
    assert record["successful"] is True and record["hash"] == envelope.hash_hex()
    assert record["source_account_sequence"] == str(account.sequence + 1)
    assert record["memo_type"] == "text" and record["memo"] == "hello"
    assert record["fee_charged"] == "100" and record["max_fee"] == "100"
    result = stellar_xdr.TransactionResult.from_xdr(record["result_xdr"])
    assert result.result.code == stellar_xdr.TransactionResultCode.txSUCCESS
    assert net.native_balance(bob) == "112.5000000"
    assert net.native_balance(alice) == "87.4999900"  # the fee is paid in stroops
    assert net.sequence(alice) == account.sequence + 1


def test_transaction_by_hash_and_not_found(net):
    alice, bob = net.new_accounts(2)
    memo = bytes(range(32))
    envelope = net.signed(
        net.builder(alice).append_payment_op(bob.public_key, Asset.native(), "1").add_hash_memo(memo), alice
    )
    net.submit(envelope)
    found = net.horizon.transactions().transaction(envelope.hash_hex()).call()
    assert found["memo_type"] == "hash" and base64.b64decode(found["memo"]) == memo
    assert found["preconditions"]["timebounds"]["max_time"] != "0"
    assert found["envelope_xdr"] == envelope.to_xdr()
    with pytest.raises(NotFoundError):
        net.horizon.transactions().transaction("ab" * 32).call()
    with pytest.raises(NotFoundError):
        net.horizon.accounts().account_id(Keypair.random().public_key).call()


def test_payments_page_with_cursor_and_links(net):
    _payer, payee = net.new_accounts(2)
    issuer, tft = net.issue(payee)
    for amount in ("1", "2", "3", "4", "5"):
        net.submit(net.signed(net.builder(issuer).append_payment_op(payee.public_key, tft, amount), issuer))
    first = net.horizon.payments().for_account(payee.public_key).limit(2).call()
    records = first["_embedded"]["records"]
    assert [r["type"] for r in records] == ["create_account", "payment"]
    assert records[1]["amount"] == "1.0000000" and records[1]["asset_code"] == "TFT"
    assert records[1]["from"] == issuer.public_key and records[1]["to"] == payee.public_key
    cursor = records[-1]["paging_token"]
    second = net.horizon.payments().for_account(payee.public_key).cursor(cursor).limit(2).call()
    assert [r["amount"] for r in second["_embedded"]["records"]] == ["2.0000000", "3.0000000"]
    assert f"cursor={second['_embedded']['records'][-1]['paging_token']}" in second["_links"]["next"]["href"]
    # the SDK follows _links.next itself
    builder = net.horizon.payments().for_account(payee.public_key).limit(2)
    builder.call()
    pages = [builder.next()["_embedded"]["records"], builder.next()["_embedded"]["records"]]
    assert [r["amount"] for r in pages[0] + pages[1]] == ["2.0000000", "3.0000000", "4.0000000", "5.0000000"]
    newest = net.horizon.payments().for_account(payee.public_key).order(desc=True).limit(1).call()
    assert newest["_embedded"]["records"][0]["amount"] == "5.0000000"


def test_payments_joined_with_their_transactions(net):
    _payer, payee = net.new_accounts(2)
    issuer, tft = net.issue(payee)
    envelope = net.signed(
        net.builder(issuer).add_hash_memo(bytes(range(32))).append_payment_op(payee.public_key, tft, "7"), issuer
    )
    net.submit(envelope)
    page = net.horizon.payments().for_account(payee.public_key).join("transactions").call()
    payment = page["_embedded"]["records"][-1]
    assert payment["transaction"]["hash"] == payment["transaction_hash"] == envelope.hash_hex()
    assert payment["transaction"]["memo_type"] == "hash"
    assert base64.b64decode(payment["transaction"]["memo"]) == bytes(range(32))
    assert "join=transactions" in page["_links"]["next"]["href"]
    plain = net.horizon.payments().for_account(payee.public_key).call()
    assert "transaction" not in plain["_embedded"]["records"][-1]


def test_account_transactions_page(net):
    alice, bob = net.new_accounts(2)
    for _ in range(3):
        net.submit(net.signed(net.builder(alice).append_payment_op(bob.public_key, Asset.native(), "1"), alice))
    page = net.horizon.transactions().for_account(alice.public_key).limit(10).call()
    assert len(page["_embedded"]["records"]) == 4  # its creation and three payments
    tokens = [int(r["paging_token"]) for r in page["_embedded"]["records"]]
    assert tokens == sorted(tokens)


def test_fee_stats_shape(net):
    stats = net.horizon.fee_stats().call()
    assert set(stats["fee_charged"]) >= {"min", "max", "mode", "p10", "p50", "p99"}
    assert stats["last_ledger_base_fee"] == "100"


def test_async_submission_then_duplicate(net, sandbox):
    alice, bob = net.new_accounts(2)
    envelope = net.signed(net.builder(alice).append_payment_op(bob.public_key, Asset.native(), "1"), alice)
    first = net.horizon.submit_transaction_async(envelope, skip_memo_required_check=True)
    assert first["tx_status"] == "PENDING" and first["hash"] == envelope.hash_hex()
    reply = httpx.post(f"{sandbox.url}/transactions_async", data={"tx": envelope.to_xdr()})
    assert reply.status_code == 409 and reply.json()["tx_status"] == "DUPLICATE"
    assert sandbox.wait_for_ledger(sandbox.chain.latest.sequence + 2)
    assert net.horizon.transactions().transaction(envelope.hash_hex()).call()["successful"]


def test_async_error_carries_result_xdr(net, sandbox):
    alice, bob = net.new_accounts(2)
    envelope = net.signed(
        net.builder(alice, sequence=net.sequence(alice) + 5).append_payment_op(bob.public_key, Asset.native(), "1"),
        alice,
    )
    reply = httpx.post(f"{sandbox.url}/transactions_async", data={"tx": envelope.to_xdr()})
    assert reply.status_code == 400 and reply.json()["tx_status"] == "ERROR"
    # Horizon's AsyncTransactionSubmissionResponse spells it error_result_xdr
    assert "errorResultXdr" not in reply.json()
    result = stellar_xdr.TransactionResult.from_xdr(reply.json()["error_result_xdr"])
    assert result.result.code == stellar_xdr.TransactionResultCode.txBAD_SEQ


def test_friendbot_funds_from_root(net, sandbox):
    newcomer = Keypair.random()
    reply = httpx.get(f"{sandbox.url}/friendbot", params={"addr": newcomer.public_key}, timeout=10)
    assert reply.status_code == 200 and reply.json()["source_account"] == root_keypair().public_key
    assert net.native_balance(newcomer) == "10000.0000000"
