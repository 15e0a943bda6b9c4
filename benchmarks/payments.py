"""Benchmark: paying a run on the sandbox, in both memo modes, and build-and-sign throughput.

    .venv/bin/python benchmarks/payments.py --nodes 3000 --channels 20 --ledger-close 0.2
    .venv/bin/python benchmarks/payments.py --sign-only 30000

Reports wall time, payments per second, and ledgers used against the minimum possible
(payments / (channels x payments per transaction)).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import tempfile
import time
from pathlib import Path


def sign_only(count: int) -> None:
    from stellar_sdk import Keypair

    from payouts.sandbox.network import SANDBOX_NETWORK_PASSPHRASE
    from payouts.stellar.build import PaymentOp, build_payment_envelope
    from payouts.stellar.keys import SigningKeys

    keys = SigningKeys(Keypair.random(), [Keypair.random() for _ in range(20)])
    issuer = Keypair.random().public_key
    destinations = [Keypair.random().public_key for _ in range(100)]
    for per_tx in (1, 100):
        started = time.perf_counter()
        for index in range(0, count, per_tx):
            envelope = build_payment_envelope(
                network_passphrase=SANDBOX_NETWORK_PASSPHRASE,
                source_account=keys.channel_accounts[index % 20],
                sequence=index + 1,
                payout_account=keys.payout_account,
                asset_code="TFT",
                asset_issuer=issuer,
                operations=[PaymentOp(destinations[(index + i) % 100], 1_807_625_000) for i in range(per_tx)],
                memo_hash=bytes(32),
                fee_per_operation_stroops=100,
                min_time=0,
                max_time=2**40,
            )
            keys.sign(envelope)
            envelope.to_xdr()
        elapsed = time.perf_counter() - started
        print(
            f"build and sign {count} payments, {per_tx} per transaction: {elapsed:.1f} s "
            f"({count / elapsed:,.0f} payments/s)"
        )


def _serve_sandbox(ledger_close_s: float, urls, stop) -> None:
    from payouts.sandbox import running_sandbox

    with running_sandbox(ledger_close_s=ledger_close_s, ops_per_ledger=10_000, submission_timeout_s=30) as sandbox:
        urls.put(sandbox.url)
        stop.wait()


@contextlib.contextmanager
def sandbox_process(ledger_close_s: float):
    """The sandbox in its own process, as Horizon is its own server: the engine does not
    share an interpreter (and its lock) with the network it pays on."""
    context = multiprocessing.get_context("spawn")
    urls, stop = context.Queue(), context.Event()
    process = context.Process(target=_serve_sandbox, args=(ledger_close_s, urls, stop), daemon=True)
    process.start()
    try:
        yield urls.get(timeout=60)
    finally:
        stop.set()
        process.join(30)


def pay(nodes: int, channels: int, ledger_close_s: float, memo_mode: str) -> None:
    from sqlmodel import Session, func, select
    from stellar_sdk import Keypair

    from payouts.ledger.db import backup, make_engine, migrate, session_scope
    from payouts.ledger.models import Payment, Run
    from payouts.ledger.unit_of_work import UnitsOfWork
    from payouts.periods import Period
    from payouts.runs.approvals import approve_run, build_manifest, sign_manifest
    from payouts.runs.payment import PayConfig, PaymentEngine
    from payouts.runs.payment.scan import scan_chain
    from payouts.runs.service import calculate_run
    from payouts.sandbox.accounts import fund_payout_account, init_sandbox
    from payouts.snapshot.load import load_snapshot
    from payouts.snapshot.synthetic import write_synthetic_snapshot
    from payouts.stellar.horizon import HorizonClient
    from payouts.stellar.keys import SigningKeys

    with tempfile.TemporaryDirectory() as folder, sandbox_process(ledger_close_s) as sandbox_url:
        folder = Path(folder)
        document = init_sandbox(
            sandbox_url, folder / "accounts.json", farmers=100, channels=channels, treasury_tft_units=10**9 * 10**7
        ).document
        client = HorizonClient(sandbox_url)
        fund_payout_account(sandbox_url, document, document["treasury_tft_units"])
        snapshot_path = folder / "month.json"
        write_synthetic_snapshot(
            snapshot_path,
            nodes=nodes,
            period=Period.from_label("2025-11"),
            seed=3,
            farm_addresses=[f["public_key"] for f in document["farmers"]],
        )
        db = make_engine(f"sqlite:///{folder}/ledger.sqlite3")
        migrate(db)
        approver = Keypair.random()
        with session_scope(db) as session:
            run = calculate_run(session, load_snapshot(snapshot_path)).run
            approve_run(
                session,
                run,
                public_key=approver.public_key,
                signature_b64=sign_manifest(build_manifest(session, run), approver),
                approvers=[approver.public_key],
                required=1,
            )
        config = PayConfig(
            network_passphrase=document["network_passphrase"],
            asset_code="TFT",
            asset_issuer=document["asset"]["issuer"],
            approvers=(approver.public_key,),
            approvals_required=1,
            memo_mode=memo_mode,
            poll_interval_s=0.05,
            ledger_close_s=ledger_close_s,
        )
        engine = PaymentEngine(
            UnitsOfWork(db), client, SigningKeys.from_accounts_file(folder / "accounts.json"), config
        )
        before_pay = backup(f"sqlite:///{folder}/ledger.sqlite3", folder / "before-pay.sqlite3")
        first_ledger = client.latest_ledger().sequence
        started = time.perf_counter()
        report = engine.pay(run.id)
        elapsed = time.perf_counter() - started
        with Session(db) as session:
            paid = session.exec(select(func.count()).select_from(Payment).where(Payment.status == "paid")).one()
            assert session.get(Run, run.id).status == "paid"
        per_tx = 1 if memo_mode == "per_receipt" else 100
        minimum = math.ceil(paid / (channels * per_tx))
        used = len(report.ledgers)
        print(
            f"{memo_mode}: {paid} payments in {elapsed:.1f} s ({paid / elapsed:,.0f}/s), "
            f"{report.transactions} transactions in {used} ledgers (minimum {minimum}, "
            f"{100 * (used - minimum) / minimum:+.0f} %), ledger close {ledger_close_s} s, "
            f"{channels} channels, ledgers elapsed {client.latest_ledger().sequence - first_ledger}"
        )
        # the chain scan: a ledger restored from before `pay` (everything adopted), then the
        # incremental scan of the paying ledger (its cursor is where the pay call left it)
        keys = SigningKeys.from_accounts_file(folder / "accounts.json")
        for label, url in (
            ("restored", f"sqlite:///{before_pay}"),
            ("incremental", f"sqlite:///{folder}/ledger.sqlite3"),
        ):
            with session_scope(make_engine(url)) as session:
                result = scan_chain(
                    session,
                    client,
                    session.get(Run, run.id),
                    payout_account=keys.payout_account,
                    accounts=keys.channel_accounts or [keys.payout_account],
                    asset_code="TFT",
                    asset_issuer=document["asset"]["issuer"],
                )
            print(
                f"  chain scan ({label}): {result.transactions_read} transactions read, "
                f"{result.adopted_payments} payments adopted, {result.requests} requests, {result.seconds:.1f} s"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=3000)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--ledger-close", type=float, default=0.2)
    parser.add_argument("--mode", choices=["per_receipt", "batch", "both"], default="both")
    parser.add_argument("--sign-only", type=int, metavar="N", help="only build and sign N payments")
    args = parser.parse_args()
    if args.sign_only:
        sign_only(args.sign_only)
        return
    for mode in ["per_receipt", "batch"] if args.mode == "both" else [args.mode]:
        pay(args.nodes, args.channels, args.ledger_close, mode)


if __name__ == "__main__":
    main()
