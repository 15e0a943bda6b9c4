"""What a client observes under each injected fault, and that state survives restarts."""

from __future__ import annotations

import base64
import hashlib
import time

import httpx
import pytest
import requests
from stellar_sdk import Asset
from stellar_sdk import xdr as stellar_xdr
from stellar_sdk.exceptions import BadResponseError, BaseHorizonError, ConnectionError, NotFoundError

from payouts.sandbox import running_sandbox
from payouts.sandbox.faults import FaultPlan, FaultSpec, FaultSpecError, SubmitFault
from tests.sandbox.conftest import make_net


def payment(net, source, destination, amount="1", timeout_s=300):
    return net.signed(
        net.builder(source, timeout_s=timeout_s).append_payment_op(destination.public_key, Asset.native(), amount),
        source,
    )


def test_504_after_apply_lands_and_is_found_by_hash(net, sandbox):
    alice, bob = net.new_accounts(2)
    envelope = payment(net, alice, bob)
    sandbox.faults.force(SubmitFault.timeout_after_apply)
    with pytest.raises(BadResponseError) as caught:
        net.submit(envelope)
    assert caught.value.status == 504
    assert caught.value.type == "https://stellar.org/horizon-errors/transaction_submission_timeout"
    assert caught.value.extras["hash"] == envelope.hash_hex()
    assert net.horizon.transactions().transaction(envelope.hash_hex()).call()["successful"] is True
    assert net.submit(envelope)["hash"] == envelope.hash_hex()  # identical bytes: same answer
    assert net.native_balance(bob) == "101.0000000"


def test_504_without_apply_never_lands(net, sandbox):
    alice, bob = net.new_accounts(2)
    envelope = payment(net, alice, bob, timeout_s=30)
    seq_before = net.sequence(alice)
    sandbox.faults.force(SubmitFault.timeout_without_apply)
    with pytest.raises(BadResponseError) as caught:
        net.submit(envelope)
    assert caught.value.status == 504 and caught.value.extras["hash"] == envelope.hash_hex()
    assert sandbox.wait_for_ledger(sandbox.chain.latest.sequence + 2)
    with pytest.raises(NotFoundError):
        net.horizon.transactions().transaction(envelope.hash_hex()).call()
    # once the network clock is past max_time it provably cannot land
    sandbox.chain.advance_clock(60)
    assert sandbox.wait_for_ledger(sandbox.chain.latest.sequence + 1)
    root = net.horizon.root().call()
    assert root["history_latest_ledger_closed_at"] > time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(envelope.transaction.preconditions.time_bounds.max_time)
    )
    error = net.fail(envelope)
    assert error.extras["result_codes"] == {"transaction": "tx_too_late"}
    assert net.sequence(alice) == seq_before


def test_drop_after_apply_is_a_connection_error_but_applied(net, sandbox):
    alice, bob = net.new_accounts(2)
    envelope = payment(net, alice, bob)
    sandbox.faults.force(SubmitFault.drop_after_apply)
    with pytest.raises(ConnectionError):
        net.submit(envelope)
    assert net.horizon.transactions().transaction(envelope.hash_hex()).call()["successful"] is True
    # and through a plain HTTP client
    envelope = payment(net, alice, bob)
    sandbox.faults.force(SubmitFault.drop_after_apply)
    with pytest.raises(httpx.TransportError):
        httpx.post(f"{sandbox.url}/transactions", data={"tx": envelope.to_xdr()}, timeout=10)
    assert net.horizon.transactions().transaction(envelope.hash_hex()).call()["successful"] is True


def test_delay_holds_inclusion_for_k_ledgers():
    with running_sandbox(ledger_close_s=0.05, faults="delay=0:4") as sandbox:
        net = make_net(sandbox)
        alice, bob = net.new_accounts(2)
        envelope = payment(net, alice, bob)
        sandbox.faults.force(SubmitFault.delay)
        submitted_at = sandbox.chain.latest.sequence
        record = net.submit(envelope)
        assert record["ledger"] >= submitted_at + 5


def test_delay_beyond_the_submission_timeout_is_504_then_lands():
    with running_sandbox(ledger_close_s=0.1, faults="delay=0:6", submission_timeout_s=0.3) as sandbox:
        net = make_net(sandbox)
        alice, bob = net.new_accounts(2)
        envelope = payment(net, alice, bob)
        sandbox.faults.force(SubmitFault.delay)
        with pytest.raises(BadResponseError) as caught:
            net.submit(envelope)
        assert caught.value.status == 504
        assert sandbox.wait_for_ledger(sandbox.chain.latest.sequence + 7)
        assert net.horizon.transactions().transaction(envelope.hash_hex()).call()["successful"]


def test_land_during_lookup_answers_not_found_while_the_ledger_including_it_closes():
    with running_sandbox(ledger_close_s=0.1, faults="delay=0:50", submission_timeout_s=0.3) as sandbox:
        net = make_net(sandbox)
        alice, bob = net.new_accounts(2)
        sequence = net.sequence(alice)
        envelope = payment(net, alice, bob)
        sandbox.faults.force(SubmitFault.delay)
        with pytest.raises(BadResponseError) as caught:
            net.submit(envelope)
        assert caught.value.status == 504 and envelope.hash_hex() in sandbox.chain.queue
        lookup = f"{sandbox.url}/transactions/{envelope.hash_hex()}"
        assert httpx.get(lookup).status_code == 404  # no fault drawn: still queued
        sandbox.faults.force_landing_during_lookup()
        assert httpx.get(lookup).status_code == 404
        # ... but the very next reads see it applied: its sequence used, found by hash
        assert net.sequence(alice) == sequence + 1
        assert httpx.get(lookup).json()["successful"] is True
        assert sandbox.faults.injected == {"delay": 1, "land_during_lookup": 1}
        # a lookup of a hash that is not queued draws nothing
        sandbox.faults.force_landing_during_lookup()
        assert httpx.get(f"{sandbox.url}/transactions/{'0' * 64}").status_code == 404
        assert sandbox.faults.injected["land_during_lookup"] == 1


def test_congestion_is_insufficient_fee_and_nothing_queued(net, sandbox):
    alice, bob = net.new_accounts(2)
    envelope = payment(net, alice, bob)
    sandbox.faults.force(SubmitFault.congestion)
    error = net.fail(envelope)
    assert error.status == 400 and error.extras["result_codes"] == {"transaction": "tx_insufficient_fee"}
    assert envelope.hash_hex() not in sandbox.chain.queue
    assert net.submit(envelope)["successful"]  # the next try goes through


def test_restart_keeps_state_and_forgets_the_queue(tmp_path):
    with running_sandbox(ledger_close_s=0.1, state_dir=tmp_path) as sandbox:
        net = make_net(sandbox)
        alice, bob = net.new_accounts(2)
        paid = net.submit(payment(net, alice, bob, amount="7"))
        sandbox.chain.ops_per_ledger = 0  # nothing lands while we restart
        queued = payment(net, alice, bob)
        net.horizon.submit_transaction_async(queued, skip_memo_required_check=True)
        port = sandbox.port
        sandbox.restart()
        sandbox.chain.ops_per_ledger = 1000
        assert sandbox.port == port and sandbox.restarts == 1
        assert net.native_balance(bob) == "107.0000000"
        assert net.horizon.transactions().transaction(paid["hash"]).call()["ledger"] == paid["ledger"]
        assert queued.hash_hex() not in sandbox.chain.queue
        assert net.submit(queued)["successful"]  # resubmitting the same bytes lands it
        latest = sandbox.chain.latest.sequence
    # a full stop and start from the same folder
    with running_sandbox(ledger_close_s=0.1, state_dir=tmp_path) as sandbox:
        net = make_net(sandbox)
        assert sandbox.chain.latest.sequence >= latest
        assert net.native_balance(bob) == "108.0000000"
        page = net.horizon.payments().for_account(bob.public_key).call()["_embedded"]["records"]
        assert [r.get("amount") for r in page][-2:] == ["7.0000000", "1.0000000"]
        # what the records carry beyond the ledger's state comes back too
        record = net.horizon.transactions().transaction(paid["hash"]).call()
        assert record["fee_meta_xdr"] == paid["fee_meta_xdr"]
        effects = net.horizon.effects().for_transaction(paid["hash"]).call()["_embedded"]["records"]
        assert [(e["type"], e["amount"]) for e in effects] == [
            ("account_credited", "7.0000000"),
            ("account_debited", "7.0000000"),
        ]
        ledger = net.horizon.ledgers().ledger(paid["ledger"]).call()
        header = stellar_xdr.LedgerHeader.from_xdr(ledger["header_xdr"])
        assert (
            header.ledger_seq.uint32 == paid["ledger"]
            and ledger["hash"] == hashlib.sha256(base64.b64decode(ledger["header_xdr"])).hexdigest()
        )
        assert net.submit(payment(net, alice, bob))["successful"]


def test_restart_fault_drops_a_waiting_submitter(tmp_path):
    with running_sandbox(ledger_close_s=0.1, state_dir=tmp_path, submission_timeout_s=3) as sandbox:
        net = make_net(sandbox)
        alice, bob = net.new_accounts(2)
        sandbox.chain.ops_per_ledger = 0
        envelope = payment(net, alice, bob)
        import threading

        restarting = threading.Timer(0.3, sandbox.restart)
        restarting.start()
        with pytest.raises((ConnectionError, BaseHorizonError, requests.RequestException)):
            net.submit(envelope)
        restarting.join(30)  # the server may still be loading its state when the client sees the drop
        assert sandbox.restarts == 1
        sandbox.chain.ops_per_ledger = 1000
        assert net.submit(envelope)["successful"]


def test_fault_spec_parsing_and_seeded_draws():
    spec = FaultSpec.parse(
        "504_after_apply=0.1,drop_after_apply=0.05,delay=0.1:3,congestion=0.05,restart=0.01,land_during_lookup=0.2"
    )
    assert spec.delay_ledgers == 3 and spec.rates["congestion"] == 0.05 and spec.rates["land_during_lookup"] == 0.2
    assert FaultSpec.parse(str(spec)) == spec
    for bad in ("boom=0.1", "504_after_apply=2", "delay=0.1", "congestion=x", "504_after_apply"):
        with pytest.raises(FaultSpecError):
            FaultSpec.parse(bad)
    draws = [[FaultPlan(spec, seed=7).next_submit_fault() for _ in range(1)] for _ in range(2)]
    one, two = FaultPlan(spec, seed=7), FaultPlan(spec, seed=7)
    assert [one.next_submit_fault() for _ in range(200)] == [two.next_submit_fault() for _ in range(200)]
    assert draws[0] == draws[1]
    assert sum(one.injected.values()) > 0


def test_rates_apply_without_forcing():
    with running_sandbox(ledger_close_s=0.05, faults="congestion=1") as sandbox:
        net = make_net(sandbox)
        envelope = net.signed(
            net.builder(__import__("payouts.sandbox").sandbox.root_keypair()).append_bump_sequence_op(0),
            __import__("payouts.sandbox").sandbox.root_keypair(),
        )
        error = net.fail(envelope)
        assert error.extras["result_codes"]["transaction"] == "tx_insufficient_fee"
        assert sandbox.faults.injected == {"congestion": 1}


def test_async_submission_never_answers_504(net, sandbox):
    alice, bob = net.new_accounts(2)
    envelope = payment(net, alice, bob)
    sandbox.faults.force(SubmitFault.timeout_after_apply)
    reply = httpx.post(f"{sandbox.url}/transactions_async", data={"tx": envelope.to_xdr()})
    # Horizon's asynchronous handler does not wait for the ledger: no submission timeout there
    assert reply.status_code == 201 and reply.json() == {"tx_status": "PENDING", "hash": envelope.hash_hex()}
    assert sandbox.faults.injected == {"504_after_apply": 1}
    assert sandbox.wait_for_outcome(envelope.hash_hex(), 5).successful
    sandbox.faults.force(SubmitFault.timeout_without_apply)
    late = payment(net, alice, bob, amount="2")
    reply = httpx.post(f"{sandbox.url}/transactions_async", data={"tx": late.to_xdr()})
    assert reply.status_code == 503 and reply.json()["tx_status"] == "TRY_AGAIN_LATER"
    with running_sandbox(ledger_close_s=0.05, faults="504_after_apply=1") as always:
        root = __import__("payouts.sandbox").sandbox.root_keypair()
        other = make_net(always)
        bump = other.signed(other.builder(root).append_bump_sequence_op(0), root)
        reply = httpx.post(f"{always.url}/transactions_async", data={"tx": bump.to_xdr()})
        assert reply.status_code != 504


def test_lagging_replica_reads_behind_and_answers_504_after_apply(net, sandbox):
    alice, bob = net.new_accounts(2)
    before = net.sequence(alice)
    envelope = payment(net, alice, bob, amount="3")
    sandbox.view.set_lag(1.5)
    started = time.monotonic()
    caught = net.fail(envelope)
    assert caught.status == 504 and caught.extras["hash"] == envelope.hash_hex()
    # the chain has it; the replica does not, yet
    assert sandbox.chain.transaction(envelope.hash_hex()).successful
    with pytest.raises(NotFoundError):
        net.horizon.transactions().transaction(envelope.hash_hex()).call()
    assert net.sequence(alice) == before
    assert envelope.hash_hex() not in [
        r["transaction_hash"] for r in net.horizon.payments().for_account(bob.public_key).call()["_embedded"]["records"]
    ]
    root = httpx.get(f"{sandbox.url}/").json()
    assert root["history_latest_ledger"] < root["core_latest_ledger"]
    assert net.fail(envelope).status == 504  # resubmitting is harmless, and still unseen
    assert time.monotonic() - started < 1.5, "the checks above ran inside the lag"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            found = net.horizon.transactions().transaction(envelope.hash_hex()).call()
            break
        except NotFoundError:
            time.sleep(0.1)
    else:
        pytest.fail("the replica never caught up")
    assert time.monotonic() - started >= 1.5 and found["successful"]
    assert net.sequence(alice) == before + 1
    assert net.submit(envelope)["hash"] == envelope.hash_hex()  # now answered from the replica
    assert sandbox.chain.transaction(envelope.hash_hex()).ledger_seq == found["ledger"]


def test_lag_fault_spec():
    spec = FaultSpec.parse("lag=2.5,congestion=0.1")
    assert spec.lag_s == 2.5 and spec.rates == {"congestion": 0.1}
    assert FaultSpec.parse(str(spec)) == spec
    for bad in ("lag=x", "lag=-1", "lag=99999"):
        with pytest.raises(FaultSpecError):
            FaultSpec.parse(bad)
    with running_sandbox(ledger_close_s=0.05, faults="lag=0.5") as sandbox:
        assert sandbox.view.lagging and sandbox.view.lag_s == 0.5
