"""Each validation rule fails its transaction with the code stellar-core would give."""

from __future__ import annotations

import time

import httpx
import pytest
from stellar_sdk import Asset, AuthorizationFlag, Keypair, Signer, TransactionBuilder, TrustLineFlags
from stellar_sdk import xdr as stellar_xdr
from stellar_sdk.exceptions import NotFoundError
from stellar_sdk.operation import BumpSequence

from payouts.sandbox import SANDBOX_NETWORK_PASSPHRASE, root_keypair, running_sandbox
from payouts.sandbox.entries import AUTH_REQUIRED, AUTH_REVOCABLE
from tests.sandbox.conftest import make_net


def codes(error) -> dict:
    assert error.status == 400, error.message
    assert error.type == "https://stellar.org/horizon-errors/transaction_failed"
    # the result XDR must decode with the SDK
    stellar_xdr.TransactionResult.from_xdr(error.extras["result_xdr"])
    return error.extras["result_codes"]


def pay(net, source, destination, amount="1", asset=None, **kwargs):
    return net.signed(
        net.builder(source, **kwargs).append_payment_op(destination.public_key, asset or Asset.native(), amount), source
    )


def test_bad_sequence(net):
    alice, bob = net.new_accounts(2)
    envelope = pay(net, alice, bob, sequence=net.sequence(alice) + 2)
    error = net.fail(envelope)
    assert codes(error) == {"transaction": "tx_bad_seq"}
    assert error.extras["result_xdr"] == "AAAAAAAAAAD////7AAAAAA=="


def test_bad_auth_wrong_key_and_extra_signature(net):
    alice, bob = net.new_accounts(2)
    envelope = net.signed(net.builder(alice).append_payment_op(bob.public_key, Asset.native(), "1"), bob)
    assert codes(net.fail(envelope)) == {"transaction": "tx_bad_auth"}
    envelope = net.signed(net.builder(alice).append_payment_op(bob.public_key, Asset.native(), "1"), alice, bob)
    assert codes(net.fail(envelope)) == {"transaction": "tx_bad_auth_extra"}


def test_wrong_network_passphrase_is_bad_auth(net):
    alice, bob = net.new_accounts(2)
    account = net.horizon.load_account(alice.public_key)
    envelope = (
        TransactionBuilder(account, "Test SDF Network ; September 2015", base_fee=100)
        .append_payment_op(bob.public_key, Asset.native(), "1")
        .set_timeout(60)
        .build()
    )
    envelope.sign(alice)
    assert codes(net.fail(envelope)) == {"transaction": "tx_bad_auth"}


def test_too_late_at_submission_and_in_the_queue(net, sandbox):
    alice, bob = net.new_accounts(2)
    builder = net.builder(alice, timeout_s=None).add_time_bounds(0, int(time.time()) - 10)
    envelope = net.signed(builder.append_payment_op(bob.public_key, Asset.native(), "1"), alice)
    assert codes(net.fail(envelope)) == {"transaction": "tx_too_late"}
    assert net.sequence(alice) == int(envelope.transaction.sequence) - 1  # nothing consumed
    # ledger bounds: max_ledger is exclusive
    builder = net.builder(alice, timeout_s=60).set_ledger_bounds(0, sandbox.chain.latest.sequence)
    envelope = net.signed(builder.append_payment_op(bob.public_key, Asset.native(), "1"), alice)
    assert codes(net.fail(envelope)) == {"transaction": "tx_too_late"}


def test_fee_below_base_fee(net):
    alice, bob = net.new_accounts(2)
    envelope = pay(net, alice, bob, base_fee=50)
    error = net.fail(envelope)
    assert codes(error) == {"transaction": "tx_insufficient_fee"}
    result = stellar_xdr.TransactionResult.from_xdr(error.extras["result_xdr"])
    assert result.fee_charged.int64 == 100  # what it should have bid


def test_insufficient_balance_for_the_fee(net):
    poor = net.new_accounts(1, xlm="1")[0]  # exactly the minimum balance
    other = net.new_accounts(1)[0]
    assert codes(net.fail(pay(net, poor, other, amount="0.0000001"))) == {"transaction": "tx_insufficient_balance"}


def test_underfunded_native_and_credit(net):
    alice, bob = net.new_accounts(2)
    result = codes(net.fail(pay(net, alice, bob, amount="99.5")))  # reserve is 1 XLM
    assert result == {"transaction": "tx_failed", "operations": ["op_underfunded"]}
    _issuer, tft = net.issue(alice, bob)
    assert codes(net.fail(pay(net, alice, bob, amount="1", asset=tft)))["operations"] == ["op_underfunded"]


def test_destination_problems_all_reported_and_rolled_back(net):
    """Core applies every operation, reports each code, then rolls the whole transaction back."""
    payer, trusting, untrusting = net.new_accounts(3)
    issuer, tft = net.issue(payer, trusting)
    net.submit(pay(net, issuer, payer, amount="100", asset=tft))
    missing = Keypair.random()
    before_seq = net.sequence(payer)
    before_xlm = net.native_balance(payer)
    builder = net.builder(payer)
    builder.append_payment_op(trusting.public_key, tft, "10")
    builder.append_payment_op(untrusting.public_key, tft, "10")
    builder.append_payment_op(missing.public_key, tft, "10")
    builder.append_payment_op(untrusting.public_key, tft, "10")
    envelope = net.signed(builder, payer)
    error = net.fail(envelope)
    assert codes(error) == {
        "transaction": "tx_failed",
        "operations": ["op_success", "op_no_trust", "op_no_destination", "op_no_trust"],
    }
    # included and failed: found by hash, fee paid, sequence consumed, payments rolled back
    found = net.horizon.transactions().transaction(envelope.hash_hex()).call()
    assert found["successful"] is False and found["fee_charged"] == "400"
    assert net.sequence(payer) == before_seq + 1
    assert float(net.native_balance(payer)) == pytest.approx(float(before_xlm) - 0.00004)
    assert net.balance(trusting, tft) == "0.0000000"
    assert net.balance(payer, tft) == "100.0000000"
    # a resubmission answers from the ledger, with the same failure
    assert codes(net.fail(envelope))["operations"][1] == "op_no_trust"


def test_not_authorized_and_line_full(net):
    holder, capped = net.new_accounts(2)
    issuer = net.new_accounts(1)[0]
    net.submit(
        net.signed(
            net.builder(issuer).append_set_options_op(set_flags=AuthorizationFlag(AUTH_REQUIRED | AUTH_REVOCABLE)),
            issuer,
        )
    )
    tft = Asset("TFT", issuer.public_key)
    net.submit(net.signed(net.builder(holder).append_change_trust_op(tft), holder))
    assert net.account(holder)["balances"][0]["is_authorized"] is False
    assert codes(net.fail(pay(net, issuer, holder, asset=tft)))["operations"] == ["op_not_authorized"]
    net.submit(
        net.signed(
            net.builder(issuer).append_set_trust_line_flags_op(
                holder.public_key, tft, set_flags=TrustLineFlags.AUTHORIZED_FLAG
            ),
            issuer,
        )
    )
    net.submit(pay(net, issuer, holder, asset=tft))
    net.submit(
        net.signed(
            net.builder(issuer).append_set_trust_line_flags_op(
                holder.public_key, tft, clear_flags=TrustLineFlags.AUTHORIZED_FLAG
            ),
            issuer,
        )
    )
    assert codes(net.fail(pay(net, issuer, holder, asset=tft)))["operations"] == ["op_not_authorized"]
    net.submit(net.signed(net.builder(capped).append_change_trust_op(tft, limit="5"), capped))
    net.submit(net.signed(net.builder(issuer).append_allow_trust_op(capped.public_key, "TFT", True), issuer))
    assert codes(net.fail(pay(net, issuer, capped, amount="5.0000001", asset=tft)))["operations"] == ["op_line_full"]
    net.submit(pay(net, issuer, capped, amount="5", asset=tft))


def test_zero_and_negative_amounts_are_malformed(net, sandbox):
    alice, bob = net.new_accounts(2)
    envelope = pay(net, alice, bob, amount="0")
    assert codes(net.fail(envelope)) == {"transaction": "tx_failed", "operations": ["op_malformed"]}
    with pytest.raises(NotFoundError):
        net.horizon.transactions().transaction(envelope.hash_hex()).call()  # never included
    # a negative amount cannot be built with the SDK: patch the XDR by hand. stellar-sdk refuses
    # to decode it, so the sandbox answers as Horizon does for bytes it cannot read.
    signed = pay(net, alice, bob, amount="1").to_xdr_object()
    signed.v1.tx.operations[0].body.payment_op.amount = stellar_xdr.Int64(-10_000_000)
    reply = httpx.post(f"{sandbox.url}/transactions", data={"tx": signed.to_xdr()})
    assert reply.status_code == 400
    assert reply.json()["type"] == "https://stellar.org/horizon-errors/transaction_malformed"


def test_more_than_100_operations_is_malformed(net, sandbox):
    alice, bob = net.new_accounts(2)
    builder = net.builder(alice)
    for _ in range(100):
        builder.append_payment_op(bob.public_key, Asset.native(), "0.01")
    envelope = builder.build()
    envelope.sign(alice)
    raw = bytearray(envelope.to_xdr_object().to_xdr_bytes())
    tx_bytes = envelope.transaction.to_xdr_object().to_xdr_bytes()
    op_bytes = envelope.transaction.operations[0].to_xdr_object().to_xdr_bytes()
    start = raw.find(tx_bytes)
    # the op count sits right before the first operation; bump it and append a 101st op
    first_op = raw.find(op_bytes, start)
    raw[first_op - 4 : first_op] = (101).to_bytes(4, "big")
    raw[first_op:first_op] = op_bytes
    import base64

    reply = httpx.post(f"{sandbox.url}/transactions", data={"tx": base64.b64encode(bytes(raw)).decode()})
    assert reply.status_code == 400
    assert reply.json()["type"] == "https://stellar.org/horizon-errors/transaction_malformed"
    # exactly 100 is fine
    assert net.submit(envelope)["operation_count"] == 100


def test_multisig_thresholds(net):
    treasury, op1, op2, op3, payee = net.new_accounts(5)
    builder = net.builder(treasury)
    for signer in (op1, op2, op3):
        builder.append_set_options_op(signer=Signer.ed25519_public_key(signer.public_key, 1))
    builder.append_set_options_op(master_weight=0, low_threshold=1, med_threshold=2, high_threshold=3)
    net.submit(net.signed(builder, treasury))
    account = net.account(treasury)
    assert account["thresholds"] == {"low_threshold": 1, "med_threshold": 2, "high_threshold": 3}
    assert len(account["signers"]) == 4
    # one operator: enough for the transaction (low) but not for a payment (medium)
    envelope = net.signed(net.builder(treasury).append_payment_op(payee.public_key, Asset.native(), "1"), op1)
    assert codes(net.fail(envelope)) == {"transaction": "tx_failed", "operations": ["op_bad_auth"]}
    # the master key no longer counts
    envelope = net.signed(net.builder(treasury).append_payment_op(payee.public_key, Asset.native(), "1"), treasury)
    assert codes(net.fail(envelope)) == {"transaction": "tx_bad_auth"}
    # two operators pay; changing signers needs all three
    net.submit(net.signed(net.builder(treasury).append_payment_op(payee.public_key, Asset.native(), "1"), op1, op2))
    builder = net.builder(treasury).append_set_options_op(signer=Signer.ed25519_public_key(payee.public_key, 1))
    assert codes(net.fail(net.signed(builder, op1, op2)))["operations"] == ["op_bad_auth"]
    builder = net.builder(treasury).append_set_options_op(signer=Signer.ed25519_public_key(payee.public_key, 1))
    net.submit(net.signed(builder, op1, op2, op3))


def test_unsupported_operation(net):
    alice = net.new_accounts(1)[0]
    builder = net.builder(alice).append_operation(BumpSequence(net.sequence(alice) + 10))
    assert codes(net.fail(net.signed(builder, alice))) == {
        "transaction": "tx_failed",
        "operations": ["op_not_supported"],
    }


def test_create_account_codes(net):
    alice, bob = net.new_accounts(2)
    low = net.signed(net.builder(alice).append_create_account_op(Keypair.random().public_key, "0.5"), alice)
    assert codes(net.fail(low))["operations"] == ["op_low_reserve"]
    exists = net.signed(net.builder(alice).append_create_account_op(bob.public_key, "2"), alice)
    assert codes(net.fail(exists))["operations"] == ["op_already_exists"]


def test_idempotent_resubmission(net):
    alice, bob = net.new_accounts(2)
    envelope = pay(net, alice, bob, amount="3")
    first = net.submit(envelope)
    second = net.submit(envelope)
    assert first == second
    assert net.native_balance(bob) == "103.0000000"


def test_fee_bump(net):
    alice, sponsor, bob = net.new_accounts(3)
    inner = pay(net, alice, bob, amount="2")
    envelope = TransactionBuilder.build_fee_bump_transaction(sponsor, 500, inner, SANDBOX_NETWORK_PASSPHRASE)
    envelope.sign(sponsor)
    record = net.submit(envelope)
    assert record["fee_account"] == sponsor.public_key and record["inner_transaction"]["hash"] == inner.hash_hex()
    by_inner = net.horizon.transactions().transaction(inner.hash_hex()).call()
    assert by_inner["hash"] == envelope.hash_hex()
    assert net.native_balance(alice) == "98.0000000"  # the sponsor paid the fee
    # a failing inner transaction reports both levels
    inner = pay(net, alice, Keypair.random())
    envelope = TransactionBuilder.build_fee_bump_transaction(sponsor, 500, inner, SANDBOX_NETWORK_PASSPHRASE)
    envelope.sign(sponsor)
    assert codes(net.fail(envelope)) == {
        "transaction": "tx_fee_bump_inner_failed",
        "inner_transaction": "tx_failed",
        "operations": ["op_no_destination"],
    }


def test_one_transaction_per_source_per_ledger(net, sandbox):
    alice, bob = net.new_accounts(2)
    seq = net.sequence(alice)
    envelopes = [pay(net, alice, bob, sequence=seq + i) for i in (1, 2, 3)]
    for envelope in envelopes:
        assert net.horizon.submit_transaction_async(envelope, skip_memo_required_check=True)["tx_status"] == "PENDING"
    ledgers = [net.submit(envelope)["ledger"] for envelope in envelopes]
    assert ledgers[0] < ledgers[1] < ledgers[2]


def test_capacity_fee_order_and_full_queue():
    """Ledgers of 2 operations: the best bids go first and pay the lowest included bid;
    once the queue is full, a bid that does not beat the cheapest queued one is refused."""
    with running_sandbox(ledger_close_s=0.0, ops_per_ledger=20) as sandbox:  # closed by hand
        net = make_net(sandbox)
        root_sources = []
        root = root_keypair()
        builder = net.builder(root)
        for _ in range(12):
            keypair = Keypair.random()
            root_sources.append(keypair)
            builder.append_create_account_op(keypair.public_key, "10")
        envelope = net.signed(builder, root)
        net.horizon.submit_transaction_async(envelope, skip_memo_required_check=True)
        sandbox.close_ledger()
        sandbox.chain.ops_per_ledger = 2
        fees = [100, 300, 200]
        sent = [
            net.signed(net.builder(k, base_fee=f).append_payment_op(root.public_key, Asset.native(), "1"), k)
            for k, f in zip(root_sources, fees)
        ]
        for env in sent:
            net.horizon.submit_transaction_async(env, skip_memo_required_check=True)
        closed = sandbox.close_ledger()
        assert [r.hash_hex for r in closed.transactions] == [sent[1].hash_hex(), sent[2].hash_hex()]
        assert closed.header.base_fee_stroops == 200  # surge: the lowest included bid
        assert [r.doc["fee_charged"] for r in closed.transactions] == ["200", "200"]
        # fill the queue (4 ledgers x 2 ops), then a base-fee bid is turned away
        for keypair in root_sources[3:11]:
            env = net.signed(
                net.builder(keypair, base_fee=150).append_payment_op(root.public_key, Asset.native(), "1"), keypair
            )
            net.horizon.submit_transaction_async(env, skip_memo_required_check=True)
        late = net.signed(
            net.builder(root_sources[11], base_fee=100).append_payment_op(root.public_key, Asset.native(), "1"),
            root_sources[11],
        )
        reply = httpx.post(f"{sandbox.url}/transactions_async", data={"tx": late.to_xdr()})
        assert reply.status_code == 400
        result = stellar_xdr.TransactionResult.from_xdr(reply.json()["error_result_xdr"])
        assert result.result.code == stellar_xdr.TransactionResultCode.txINSUFFICIENT_FEE
        assert int(net.horizon.fee_stats().call()["fee_charged"]["max"]) == 200
