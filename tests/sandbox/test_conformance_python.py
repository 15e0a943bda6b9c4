"""The sandbox through the Python SDK's own `Server` builders: one named check per call, link,
paging helper and stream, counted, and every one must pass."""

from __future__ import annotations

import base64
import copy
import hashlib
import queue
import threading
from collections.abc import Callable, Iterator

import httpx
from stellar_sdk import Asset, Signer, TransactionEnvelope
from stellar_sdk import xdr as stellar_xdr
from stellar_sdk.exceptions import BadRequestError, NotFoundError, SdkError

from payouts.sandbox import SANDBOX_NETWORK_PASSPHRASE

CHECKS = (
    "root",
    "load_account",
    "account_record",
    "submit_transaction",
    "transaction_by_hash",
    "transaction_fee_meta_xdr",
    "transactions_for_account_include_failed",
    "transactions_for_ledger",
    "transactions_global",
    "operations_for_transaction",
    "operation_by_id",
    "operations_for_account",
    "operations_for_ledger",
    "payments_for_account_join",
    "payments_for_ledger",
    "payments_for_transaction",
    "effects_for_account",
    "effects_for_operation",
    "effects_for_transaction",
    "effects_for_ledger",
    "effects_global",
    "ledger_by_sequence",
    "ledger_header_xdr",
    "paging_next",
    "paging_prev",
    "paging_cursor_desc",
    "fee_stats",
    "not_found_error",
    "bad_request_error",
    "async_error_result_xdr",
    "stream_payments_for_account",
    "stream_transactions_global",
    "stream_operations_for_account",
    "stream_ledgers",
    "stream_effects_for_account",
)


def _first_streamed(
    stream: Iterator[dict], wanted: Callable[[dict], bool], trigger: Callable[[], None], timeout_s: float = 20
):
    found: queue.Queue = queue.Queue()

    def read() -> None:
        try:
            for message in stream:
                if wanted(message):
                    found.put(message)
                    return
        except (SdkError, ValueError) as exc:  # a broken stream fails the check below
            found.put(exc)

    threading.Thread(target=read, daemon=True).start()
    trigger()
    message = found.get(timeout=timeout_s)
    assert not isinstance(message, Exception), message
    return message


def test_every_python_sdk_check_passes(net, sandbox):
    horizon = net.horizon
    alice, bob, signer = net.new_accounts(3)
    issuer, tft = net.issue(alice, bob)
    net.submit(net.signed(net.builder(issuer).append_payment_op(alice.public_key, tft, "100"), issuer))
    memo = hashlib.sha256(b"receipt").digest()
    envelope = net.signed(
        net.builder(alice)
        .append_payment_op(bob.public_key, tft, "2.5")
        .append_set_options_op(signer=Signer.ed25519_public_key(signer.public_key, 1))
        .add_hash_memo(memo),
        alice,
    )
    results: dict[str, str | None] = {}

    def check(name: str, action: Callable[[], object]) -> None:
        assert name in CHECKS and name not in results, name
        try:
            outcome = action()
            results[name] = None if outcome is not False else "assertion failed"
        except (AssertionError, LookupError, ValueError, TypeError, SdkError, httpx.HTTPError, queue.Empty) as exc:
            results[name] = f"{type(exc).__name__}: {exc}"[:300]

    def submitted():
        reply = net.submit(envelope)
        assert reply["hash"] == envelope.hash_hex() and reply["successful"]
        return reply

    check("root", lambda: horizon.root().call()["network_passphrase"] == SANDBOX_NETWORK_PASSPHRASE)
    check("load_account", lambda: horizon.load_account(alice.public_key).sequence > 0)
    check("account_record", lambda: horizon.accounts().account_id(bob.public_key).call()["id"] == bob.public_key)
    check("submit_transaction", submitted)
    tx = horizon.transactions().transaction(envelope.hash_hex()).call()
    ledger_seq = tx["ledger"]
    check("transaction_by_hash", lambda: base64.b64decode(tx["memo"]) == memo and tx["operation_count"] == 2)

    def fee_meta():
        changes = stellar_xdr.LedgerEntryChanges.from_xdr(tx["fee_meta_xdr"])
        before, after = changes.ledger_entry_changes
        paid = before.state.data.account.balance.int64 - after.updated.data.account.balance.int64
        return paid == int(tx["fee_charged"])

    check("transaction_fee_meta_xdr", fee_meta)
    check(
        "transactions_for_account_include_failed",
        lambda: any(
            r["hash"] == tx["hash"]
            for r in horizon.transactions()
            .for_account(alice.public_key)
            .include_failed(True)
            .limit(200)
            .call()["_embedded"]["records"]
        ),
    )
    check(
        "transactions_for_ledger",
        lambda: (
            tx["hash"]
            in [r["hash"] for r in horizon.transactions().for_ledger(ledger_seq).call()["_embedded"]["records"]]
        ),
    )
    check(
        "transactions_global",
        lambda: (
            tx["hash"]
            in [r["hash"] for r in horizon.transactions().order(desc=True).limit(200).call()["_embedded"]["records"]]
        ),
    )
    ops = horizon.operations().for_transaction(tx["hash"]).call()["_embedded"]["records"]
    check("operations_for_transaction", lambda: [o["type"] for o in ops] == ["payment", "set_options"])
    check(
        "operation_by_id",
        lambda: horizon.operations().operation(ops[1]["id"]).call()["signer_key"] == signer.public_key,
    )
    check(
        "operations_for_account",
        lambda: (
            {o["id"] for o in ops}
            <= {
                o["id"]
                for o in horizon.operations().for_account(alice.public_key).limit(200).call()["_embedded"]["records"]
            }
        ),
    )
    check(
        "operations_for_ledger",
        lambda: len(horizon.operations().for_ledger(ledger_seq).call()["_embedded"]["records"]) >= 2,
    )

    def joined():
        records = horizon.payments().for_account(bob.public_key).join("transactions").limit(200).call()
        mine = [r for r in records["_embedded"]["records"] if r["transaction_hash"] == tx["hash"]]
        return len(mine) == 1 and mine[0]["transaction"]["hash"] == tx["hash"] and mine[0]["amount"] == "2.5000000"

    check("payments_for_account_join", joined)
    check(
        "payments_for_ledger",
        lambda: (
            [p["type"] for p in horizon.payments().for_ledger(ledger_seq).call()["_embedded"]["records"]] == ["payment"]
        ),
    )
    check(
        "payments_for_transaction",
        lambda: len(horizon.payments().for_transaction(tx["hash"]).call()["_embedded"]["records"]) == 1,
    )

    def effect_types(builder) -> list[str]:
        return [e["type"] for e in builder.limit(200).call()["_embedded"]["records"]]

    check(
        "effects_for_account",
        lambda: (
            {"account_created", "trustline_created", "account_credited"}
            <= set(effect_types(horizon.effects().for_account(bob.public_key)))
        ),
    )
    check(
        "effects_for_operation",
        lambda: effect_types(horizon.effects().for_operation(ops[0]["id"])) == ["account_credited", "account_debited"],
    )
    check(
        "effects_for_transaction",
        lambda: (
            effect_types(horizon.effects().for_transaction(tx["hash"]))
            == ["account_credited", "account_debited", "signer_created"]
        ),
    )
    check("effects_for_ledger", lambda: "signer_created" in effect_types(horizon.effects().for_ledger(ledger_seq)))
    check("effects_global", lambda: "account_created" in effect_types(horizon.effects()))
    ledger = horizon.ledgers().ledger(ledger_seq).call()
    check(
        "ledger_by_sequence", lambda: ledger["sequence"] == ledger_seq and ledger["successful_transaction_count"] >= 1
    )

    def header():
        raw = base64.b64decode(ledger["header_xdr"])
        decoded = stellar_xdr.LedgerHeader.from_xdr_bytes(raw)
        return decoded.ledger_seq.uint32 == ledger_seq and hashlib.sha256(raw).hexdigest() == ledger["hash"]

    check("ledger_header_xdr", header)
    pager = horizon.operations().for_account(alice.public_key).limit(1)
    first = pager.call()["_embedded"]["records"]
    second = pager.next()["_embedded"]["records"]
    check("paging_next", lambda: int(second[0]["paging_token"]) > int(first[0]["paging_token"]))
    check("paging_prev", lambda: pager.prev()["_embedded"]["records"][0]["id"] == first[0]["id"])

    def cursor_desc():
        everything = horizon.operations().for_account(alice.public_key).limit(200).call()["_embedded"]["records"]
        newest = everything[-1]["paging_token"]
        older = horizon.operations().for_account(alice.public_key).cursor(newest).order(desc=True).limit(200).call()
        return [r["id"] for r in older["_embedded"]["records"]] == [r["id"] for r in everything[:-1]][::-1]

    check("paging_cursor_desc", cursor_desc)
    check("fee_stats", lambda: int(horizon.fee_stats().call()["last_ledger"]) >= ledger_seq)

    def not_found():
        try:
            horizon.transactions().transaction("0" * 64).call()
        except NotFoundError:
            return True
        return False

    def bad_request():
        try:
            horizon.payments().cursor("sideways").call()
        except BadRequestError as exc:
            return exc.extras["invalid_field"] == "cursor"
        return False

    check("not_found_error", not_found)
    check("bad_request_error", bad_request)

    def async_error():
        too_far = net.signed(
            net.builder(bob, sequence=net.sequence(bob) + 3).append_payment_op(alice.public_key, Asset.native(), "1"),
            bob,
        )
        reply = httpx.post(f"{sandbox.url}/transactions_async", data={"tx": too_far.to_xdr()})
        body = reply.json()
        result = stellar_xdr.TransactionResult.from_xdr(body["error_result_xdr"])
        return reply.status_code == 400 and result.result.code == stellar_xdr.TransactionResultCode.txBAD_SEQ

    check("async_error_result_xdr", async_error)

    def pay(amount: str) -> Callable[[], None]:
        def send() -> None:
            payment = net.signed(net.builder(alice).append_payment_op(bob.public_key, tft, amount), alice)
            net.submit(payment)

        return send

    def streamed(name: str, builder, wanted: Callable[[dict], bool], trigger: Callable[[], None]) -> None:
        # from the newest record now: with cursor=now the stream might connect after the payment
        # lands (the ledgers stream, which never runs dry, does use cursor=now)
        def run() -> bool:
            if name == "stream_ledgers":
                builder.cursor("now")
            else:
                page = copy.deepcopy(builder).order(desc=True).limit(1).call()
                builder.cursor(page["_embedded"]["records"][0]["paging_token"])
            return bool(_first_streamed(builder.stream(), wanted, trigger)["paging_token"])

        check(name, run)

    streamed(
        "stream_payments_for_account",
        horizon.payments().for_account(bob.public_key),
        lambda m: m.get("amount") == "0.0000201",
        pay("0.0000201"),
    )

    def tx_amount(message: dict) -> str | None:
        envelope = TransactionEnvelope.from_xdr(message["envelope_xdr"], SANDBOX_NETWORK_PASSPHRASE)
        return getattr(envelope.transaction.operations[0], "amount", None)

    streamed(
        "stream_transactions_global", horizon.transactions(), lambda m: tx_amount(m) == "0.0000202", pay("0.0000202")
    )
    streamed(
        "stream_operations_for_account",
        horizon.operations().for_account(alice.public_key),
        lambda m: m.get("amount") == "0.0000203",
        pay("0.0000203"),
    )
    latest = horizon.ledgers().order(desc=True).limit(1).call()["_embedded"]["records"][0]["sequence"]
    streamed("stream_ledgers", horizon.ledgers(), lambda m: m["sequence"] > latest, lambda: None)
    streamed(
        "stream_effects_for_account",
        horizon.effects().for_account(bob.public_key),
        lambda m: m["type"] == "account_credited" and m.get("amount") == "0.0000204",
        pay("0.0000204"),
    )

    failed = {name: detail for name, detail in results.items() if detail is not None}
    assert list(results) == list(CHECKS), "every listed check ran, in order"
    assert not failed, f"{len(results) - len(failed)} passed, {len(failed)} failed: {failed}"
    assert len(results) == 35
