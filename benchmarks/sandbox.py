"""Sandbox throughput: payments accepted and applied per second with 100-payment envelopes.

Envelopes are built and signed first (that is the client's cost, not the network's); then
they are posted to /transactions_async from a few threads and the clock runs until the last
one is in a ledger. Goal: at least 1,000 payments applied per second on a 2-core machine.

    .venv/bin/python benchmarks/sandbox.py [--envelopes 60] [--sources 20]
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
from stellar_sdk import Account, Asset, Keypair, TransactionBuilder

from payouts.sandbox import SANDBOX_NETWORK_PASSPHRASE, root_keypair, running_sandbox


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envelopes", type=int, default=60, help="100-payment envelopes to apply")
    parser.add_argument("--sources", type=int, default=20, help="source accounts (channels)")
    parser.add_argument("--ledger-close", type=float, default=0.25, help="seconds between ledgers")
    args = parser.parse_args()

    with running_sandbox(ledger_close_s=args.ledger_close, ops_per_ledger=10_000, submission_timeout_s=60) as sandbox:
        root = root_keypair()
        sources = [Keypair.random() for _ in range(args.sources)]
        payees = [Keypair.random() for _ in range(100)]
        with httpx.Client(base_url=sandbox.url, timeout=60) as client:
            root_seq = int(client.get(f"/accounts/{root.public_key}").json()["sequence"])
            setup = TransactionBuilder(Account(root.public_key, root_seq), SANDBOX_NETWORK_PASSPHRASE, base_fee=100)
            for keypair in sources + payees[: 100 - len(sources)]:
                setup.append_create_account_op(keypair.public_key, "1000")
            setup_tx = setup.set_timeout(300).build()
            setup_tx.sign(root)
            created = client.post("/transactions", data={"tx": setup_tx.to_xdr()}).json()
            first_seq = created["ledger"] << 32
            payees = sources + payees[: 100 - len(sources)]

            started = time.perf_counter()
            envelopes = []
            for index in range(args.envelopes):
                source = sources[index % len(sources)]
                account = Account(source.public_key, first_seq + index // len(sources))
                builder = TransactionBuilder(account, SANDBOX_NETWORK_PASSPHRASE, base_fee=100)
                for payee in payees:
                    builder.append_payment_op(payee.public_key, Asset.native(), "0.0000001")
                tx = builder.set_timeout(600).build()
                tx.sign(source)
                envelopes.append(tx.to_xdr())
            build_s = time.perf_counter() - started

        ledger_before = sandbox.chain.latest.sequence
        started = time.perf_counter()

        def post(envelope: str) -> int:
            with httpx.Client(base_url=sandbox.url, timeout=60) as worker:
                return worker.post("/transactions_async", data={"tx": envelope}).status_code

        # chained sequence numbers from one source must arrive in order: one thread per source
        by_source: list[list[str]] = [envelopes[i :: len(sources)] for i in range(len(sources))]
        with ThreadPoolExecutor(max_workers=4) as pool:
            statuses = [s for batch in pool.map(lambda batch: [post(e) for e in batch], by_source) for s in batch]
        accepted_s = time.perf_counter() - started
        assert all(status == 201 for status in statuses), statuses
        with sandbox.chain.lock:
            sandbox.chain.closed.wait_for(lambda: not sandbox.chain.queue, 120)
        applied_s = time.perf_counter() - started
        ledger = sandbox.chain
        successful = sum(1 for h in ledger.tx_order[-args.envelopes :] if ledger.transactions[h].successful)
        payments = args.envelopes * 100
    print(f"built and signed {args.envelopes} envelopes of 100 payments in {build_s:.2f} s (client side)")
    print(f"accepted {args.envelopes / accepted_s:.0f} envelopes/s ({payments / accepted_s:.0f} payments/s)")
    print(
        f"applied {payments} payments in {applied_s:.2f} s over {ledger.latest.sequence - ledger_before} "
        f"ledgers: {payments / applied_s:.0f} payments/s ({successful}/{args.envelopes} envelopes successful)"
    )


if __name__ == "__main__":
    main()
