"""Shared steps of the payment tests: fund the payout account, a grid paying sandbox farmers,
and the exactly-once invariants checked against the chain."""

from __future__ import annotations

import base64
from collections import Counter

from sqlmodel import Session, select
from stellar_sdk import Account as SdkAccount
from stellar_sdk import Asset as SdkAsset
from stellar_sdk import Keypair, Signer, TransactionBuilder

from payouts.ledger.models import Payment, StellarTransaction
from payouts.ledger.states import PaymentStatus
from payouts.money import format_tft
from payouts.snapshot.load import load_snapshot
from payouts.stellar.horizon import HorizonClient
from payouts.stellar.merkle import merkle_root
from tests import factories


def fund_payout(client: HorizonClient, document: dict, amount_units: int) -> None:
    treasury = Keypair.from_secret(document["treasury"]["secret"])
    account = client.account(treasury.public_key)
    envelope = (
        TransactionBuilder(
            SdkAccount(treasury.public_key, account.sequence), document["network_passphrase"], base_fee=100
        )
        .append_payment_op(
            document["payout"]["public_key"],
            SdkAsset(document["asset"]["code"], document["asset"]["issuer"]),
            format_tft(amount_units),
        )
        .set_timeout(120)
        .build()
    )
    envelope.sign(treasury)
    assert client.submit(envelope.to_xdr()).outcome == "success"


def grid_snapshot(tmp_path, farmers: list[dict], nodes_per_farm: int = 2):
    farms, nodes = [], []
    for index, farmer in enumerate(farmers):
        farm_id = 100 + index
        farms.append(
            {
                "farm_id": farm_id,
                "name": f"farm {farm_id}",
                "twin_id": 7,
                "certification": "NotCertified",
                "stellar_address": farmer["public_key"],
            }
        )
        nodes += [factories.node(farm_id * 10 + n, farm_id=farm_id) for n in range(nodes_per_farm)]
    document = factories.snapshot(nodes=nodes, farms=farms)
    return load_snapshot(factories.write(tmp_path / "month.json", document))


def chain_payments(client: HorizonClient, document: dict) -> list[dict]:
    payout = document["payout"]["public_key"]
    return [
        r
        for r in client.payments(payout)
        if r.get("type") == "payment" and r.get("from") == payout and r.get("transaction_successful", True)
    ]


def check_invariants(db, client, document, run_id, outside: frozenset[str] = frozenset()):
    """The exactly-once invariants, checked against the chain:
    - every transaction on chain from the payout account is in the ledger, with exactly the
      payments (destination, amount) the ledger says it holds, and the reverse;
    - its memo is the receipt hash (one payment) or the Merkle root of its receipt hashes;
    - no receipt is paid twice, across every run;
    - every payable receipt of `run_id` is paid, or held (or settled by a paid retry) with a reason;
    - chain totals equal ledger totals.
    `outside`: hashes of transactions an operator sent from the payout account by hand."""
    with Session(db) as session:
        everything = session.exec(select(Payment)).all()
        # keyed by the hash on chain: the transaction's own or its fee bump's
        transactions = {t.fee_bump_hash or t.tx_hash: t for t in session.exec(select(StellarTransaction)).all()}
    paid = [p for p in everything if p.status == PaymentStatus.PAID]
    receipts_paid = Counter(p.receipt_hash for p in paid)
    assert all(n == 1 for n in receipts_paid.values()), f"a receipt was paid twice: {receipts_paid}"

    ledger_by_tx: dict[str, Counter] = {}
    for payment in paid:
        ledger_by_tx.setdefault(payment.tx_hash, Counter())[(payment.destination, payment.amount_tft_units)] += 1
    chain = [r for r in chain_payments(client, document) if r["transaction_hash"] not in outside]
    chain_by_tx: dict[str, Counter] = {}
    for record in chain:
        amount_units = int(record["amount"].replace(".", ""))
        chain_by_tx.setdefault(record["transaction_hash"], Counter())[(record["to"], amount_units)] += 1
    assert chain_by_tx == ledger_by_tx, _disagreement(chain_by_tx, ledger_by_tx)

    for tx_hash in chain_by_tx:
        info = client.transaction(tx_hash)
        memo = base64.b64decode(info.memo).hex()
        hashes = [p.receipt_hash for p in paid if p.tx_hash == tx_hash]
        expected = (
            hashes[0]
            if len(hashes) == 1 and transactions[tx_hash].memo_hash == hashes[0]
            else merkle_root(hashes).hex()
        )
        assert memo == expected == transactions[tx_hash].memo_hash
        assert transactions[tx_hash].status == "confirmed"

    payments = [p for p in everything if p.run_id == run_id]
    for payment in payments:
        if payment.status == PaymentStatus.CLAIMABLE:
            # sent as a claimable balance: not in the payment history, checked by balance id
            assert payment.claimable_balance_id and payment.tx_hash, payment
        elif payment.status != PaymentStatus.PAID:
            assert payment.status in (PaymentStatus.HELD, PaymentStatus.RETRIED) and payment.hold_reason, payment
    ledger_total = sum(p.amount_tft_units for p in paid)
    chain_total = sum(int(r["amount"].replace(".", "")) for r in chain)
    assert ledger_total == chain_total
    return payments


def _disagreement(chain_by_tx: dict[str, Counter], ledger_by_tx: dict[str, Counter]) -> str:
    """Which side holds what the other does not, per transaction hash."""
    lines = ["chain and ledger disagree on what was paid"]
    for tx_hash in sorted(set(chain_by_tx) | set(ledger_by_tx)):
        chain, ledger = chain_by_tx.get(tx_hash, Counter()), ledger_by_tx.get(tx_hash, Counter())
        if chain == ledger:
            continue
        if chain - ledger:
            lines.append(f"  on chain, not in the ledger: {tx_hash} {dict(chain - ledger)}")
        if ledger - chain:
            lines.append(f"  in the ledger, not on chain: {tx_hash} {dict(ledger - chain)}")
    return "\n".join(lines)


def make_treasury_multisig(client: HorizonClient, document: dict, signers: list[Keypair]) -> None:
    """Treasury signers each of weight 1, master key off, payments need 2 signatures."""
    treasury = Keypair.from_secret(document["treasury"]["secret"])
    builder = TransactionBuilder(
        SdkAccount(treasury.public_key, client.account(treasury.public_key).sequence),
        document["network_passphrase"],
        base_fee=100,
    )
    for signer in signers:
        builder.append_set_options_op(signer=Signer.ed25519_public_key(signer.public_key, 1))
    builder.append_set_options_op(master_weight=0, low_threshold=1, med_threshold=2, high_threshold=2)
    envelope = builder.set_timeout(60).build()
    envelope.sign(treasury)
    assert client.submit(envelope.to_xdr()).outcome == "success"
