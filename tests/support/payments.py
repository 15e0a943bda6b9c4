"""Shared steps of the payment tests: fund the payout account, a grid paying sandbox farmers,
and the exactly-once invariants checked against the chain."""

from __future__ import annotations

import base64
from collections import Counter

from sqlmodel import Session, select
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Asset as SdkAsset
from stellar_sdk import Keypair, TransactionBuilder

from payouts.ledger.models import Payment, StellarTransaction
from payouts.ledger.states import PaymentStatus
from payouts.money import format_tft
from payouts.snapshot.load import load_snapshot
from payouts.stellar.horizon import HorizonClient
from tests import factories


def fund_payout(client: HorizonClient, document: dict, amount_units: int) -> None:
    treasury = Keypair.from_secret(document["treasury"]["secret"])
    account = client.account(treasury.public_key)
    envelope = (
        TransactionBuilder(SdkAccount(treasury.public_key, account.sequence), document["network_passphrase"], base_fee=100)
        .append_payment_op(document["payout"]["public_key"],
                           SdkAsset(document["asset"]["code"], document["asset"]["issuer"]), format_tft(amount_units))
        .set_timeout(120).build()
    )
    envelope.sign(treasury)
    assert client.submit(envelope.to_xdr()).outcome == "success"


def grid_snapshot(tmp_path, farmers: list[dict], nodes_per_farm: int = 2):
    farms, nodes = [], []
    for index, farmer in enumerate(farmers):
        farm_id = 100 + index
        farms.append({"farm_id": farm_id, "name": f"farm {farm_id}", "twin_id": 7,
                      "certification": "NotCertified", "stellar_address": farmer["public_key"]})
        nodes += [factories.node(farm_id * 10 + n, farm_id=farm_id) for n in range(nodes_per_farm)]
    document = factories.snapshot(nodes=nodes, farms=farms)
    return load_snapshot(factories.write(tmp_path / "month.json", document))


def chain_payments(client: HorizonClient, document: dict) -> list[dict]:
    payout = document["payout"]["public_key"]
    return [r for r in client.payments(payout) if r.get("type") == "payment" and r.get("from") == payout
            and r.get("transaction_successful", True)]


def check_invariants(db, client, document, run_id):
    """Each receipt paid at most once; every payable receipt of the run paid or held with a
    reason (or settled by a paid retry); chain totals equal ledger totals over every run."""
    with Session(db) as session:
        everything = session.exec(select(Payment)).all()
        payments = [p for p in everything if p.run_id == run_id]
        transactions = {t.tx_hash: t for t in session.exec(select(StellarTransaction)).all()}
    chain = chain_payments(client, document)
    memo_of = {}
    for record in chain:
        tx = client.transaction(record["transaction_hash"])
        memo_of[record["transaction_hash"]] = base64.b64decode(tx.memo).hex() if tx.memo else None
    paid_memos = Counter(memo_of[r["transaction_hash"]] for r in chain)
    assert all(count == 1 for count in paid_memos.values()), f"a receipt was paid twice: {paid_memos}"
    for payment in payments:
        if payment.status == PaymentStatus.PAID:
            assert paid_memos[payment.receipt_hash] == 1
            assert transactions[payment.tx_hash].status == "confirmed"
        else:
            assert payment.status in (PaymentStatus.HELD, PaymentStatus.RETRIED) and payment.hold_reason, payment
            assert paid_memos[payment.receipt_hash] == 0
    ledger_total = sum(p.amount_tft_units for p in everything if p.status == PaymentStatus.PAID)
    chain_total = sum(int(r["amount"].replace(".", "")) for r in chain)
    assert ledger_total == chain_total
    return payments


