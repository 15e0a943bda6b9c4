"""ManageData as stellar-core applies it: set, change and delete a data entry, one base reserve
per entry, and the account's `data` (base64 values) as Horizon shows it."""

from __future__ import annotations

import base64

import httpx
from stellar_sdk import ManageData
from stellar_sdk import xdr as stellar_xdr

from tests.sandbox.test_rules import codes


def _data(net, keypair) -> dict:
    return net.account(keypair)["data"]


def test_set_change_and_delete_a_data_entry(net):
    alice = net.new_accounts(1)[0]
    name = "payouts:claim:dev:91"
    before = net.account(alice)["subentry_count"]
    net.submit(net.signed(net.builder(alice).append_manage_data_op(name, b"\x00\x01nonce"), alice))
    account = net.account(alice)
    assert account["data"] == {name: base64.b64encode(b"\x00\x01nonce").decode()}
    assert account["subentry_count"] == before + 1
    # GET /accounts/{id}/data/{key}, as Horizon answers it
    reply = httpx.get(f"{net.sandbox.url}/accounts/{alice.public_key}/data/{name}")
    assert reply.status_code == 200 and reply.json() == {"value": base64.b64encode(b"\x00\x01nonce").decode()}
    assert httpx.get(f"{net.sandbox.url}/accounts/{alice.public_key}/data/other").status_code == 404

    net.submit(net.signed(net.builder(alice).append_manage_data_op(name, b"x" * 64), alice))
    assert base64.b64decode(_data(net, alice)[name]) == b"x" * 64
    assert net.account(alice)["subentry_count"] == before + 1  # changed, not a second entry

    result = net.submit(net.signed(net.builder(alice).append_manage_data_op(name, None), alice))
    assert _data(net, alice) == {}
    assert net.account(alice)["subentry_count"] == before
    operations = net.horizon.operations().for_transaction(result["hash"]).call()["_embedded"]["records"]
    assert [(op["type"], op["type_i"], op["name"]) for op in operations] == [("manage_data", 10, name)]
    effects = net.horizon.effects().for_transaction(result["hash"]).call()["_embedded"]["records"]
    assert [(e["type"], e["type_i"], e["name"]) for e in effects] == [("data_removed", 41, name)]


def test_deleting_a_missing_entry_and_invalid_names(net):
    alice = net.new_accounts(1)[0]
    envelope = net.signed(net.builder(alice).append_manage_data_op("absent", None), alice)
    assert codes(net.fail(envelope)) == {"transaction": "tx_failed", "operations": ["op_data_name_not_found"]}
    for bad in ("", "tab\there", "caf\u00e9"):
        envelope = net.signed(net.builder(alice).append_operation(ManageData(bad, b"v")), alice)
        assert codes(net.fail(envelope)) == {"transaction": "tx_failed", "operations": ["op_data_invalid_name"]}
    assert _data(net, alice) == {}


def test_a_new_entry_needs_a_base_reserve(net):
    # 1 XLM is exactly the two base reserves of an empty account: the fee, then nothing spare
    alice = net.new_accounts(1, xlm="1.0001")[0]
    envelope = net.signed(net.builder(alice).append_manage_data_op("k", b"v"), alice)
    result = codes(net.fail(envelope))
    assert result == {"transaction": "tx_failed", "operations": ["op_low_reserve"]}
    # the failed transaction rolled back: no entry
    assert _data(net, alice) == {}
    xdr = net.horizon.transactions().for_account(alice.public_key).include_failed(True).call()
    records = xdr["_embedded"]["records"]
    stellar_xdr.TransactionResult.from_xdr(records[-1]["result_xdr"])
