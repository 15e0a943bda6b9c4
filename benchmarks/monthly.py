"""Benchmark: a whole month on the workers, from the trigger to the exported run.

    .venv/bin/python benchmarks/monthly.py --nodes 3000 --channels 20 --ledger-close 0.5

Starts its own Redis, a sandbox network in its own process, and a Celery worker process on a
SQLite ledger; queues the period like beat would, approves it when it waits for approvals,
and reports the wall time of each phase: calculate (freeze + calculate), and pay + reconcile +
export.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.payments import sandbox_process


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=3000)
    parser.add_argument("--channels", type=int, default=20)
    parser.add_argument("--ledger-close", type=float, default=0.5)
    args = parser.parse_args()

    from sqlmodel import Session, func, select
    from stellar_sdk import Keypair

    from payouts.ledger.db import make_engine, migrate, session_scope
    from payouts.ledger.models import Payment, Run
    from payouts.periods import Period
    from payouts.runs.approvals import approve_run, build_manifest, sign_manifest
    from payouts.sandbox.accounts import fund_payout_account, init_sandbox
    from payouts.snapshot.synthetic import write_synthetic_snapshot

    period = Period.from_label("2025-11")
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as folder, sandbox_process(args.ledger_close) as horizon_url:
        folder = Path(folder)
        port = _free_port()
        redis = subprocess.Popen(
            [
                shutil.which("redis-server"),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--dir",
                str(folder),
            ],
            stdout=subprocess.DEVNULL,
        )
        worker = None
        try:
            accounts = folder / "accounts.json"
            document = init_sandbox(horizon_url, accounts, farmers=100, channels=args.channels).document
            fund_payout_account(horizon_url, document, document["treasury_tft_units"])
            drop = folder / "state" / "snapshots"
            drop.mkdir(parents=True)
            write_synthetic_snapshot(
                drop / f"{period.label}.json.gz",
                nodes=args.nodes,
                period=period,
                seed=3,
                network="dev",
                farm_addresses=[f["public_key"] for f in document["farmers"]],
            )
            approver = Keypair.random()
            ledger_url = f"sqlite:///{folder}/ledger.sqlite3"
            env = {
                **os.environ,
                "PAYOUTS_STATE_DIR": str(folder / "state"),
                "PAYOUTS_DATABASE_URL": ledger_url,
                "PAYOUTS_BROKER_URL": f"redis://127.0.0.1:{port}/0",
                "PAYOUTS_NETWORK": "dev",
                "PAYOUTS_HORIZON_URL": horizon_url,
                "PAYOUTS_STELLAR_ACCOUNTS_FILE": str(accounts),
                "PAYOUTS_APPROVERS": approver.public_key,
                "PAYOUTS_APPROVALS_REQUIRED": "1",
                "PAYOUTS_FIRST_PERIOD": period.label,
                "PAYOUTS_LAST_PERIOD": period.label,
                "PAYOUTS_LOG_LEVEL": "WARNING",
                "PAYOUTS_LOG_FORMAT": "json",
            }
            os.environ.update({k: v for k, v in env.items() if k.startswith("PAYOUTS_")})
            db = make_engine(ledger_url)
            migrate(db)
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "workers.celery_app",
                    "worker",
                    "--pool",
                    "solo",
                    "--without-gossip",
                    "--without-mingle",
                    "--loglevel",
                    "WARNING",
                ],
                env=env,
                stdout=open(folder / "worker.log", "w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            from workers.tasks import advance_period

            def status() -> str | None:
                with Session(db) as session:
                    run = session.exec(select(Run).where(Run.period_offset == period.offset)).first()
                    return run.status if run else None

            started = time.perf_counter()
            advance_period.delay(period.offset)
            _wait(lambda: status() == "calculated", 600, "the calculation")
            calculated_s = time.perf_counter() - started
            with session_scope(db) as session:
                run = session.exec(select(Run).where(Run.period_offset == period.offset)).one()
                approve_run(
                    session,
                    run,
                    public_key=approver.public_key,
                    signature_b64=sign_manifest(build_manifest(session, run), approver),
                    approvers=[approver.public_key],
                    required=1,
                )
            approved_at = time.perf_counter()
            advance_period.delay(period.offset)
            _wait(lambda: status() == "exported", 1800, "payment, reconciliation and export")
            paid_s = time.perf_counter() - approved_at
            with Session(db) as session:
                paid = session.exec(select(func.count()).select_from(Payment).where(Payment.status == "paid")).one()
            print(
                f"{args.nodes} nodes on one worker: calculate {calculated_s:.1f} s; pay {paid} payments, "
                f"reconcile and export {paid_s:.1f} s; {args.channels} channels, {args.ledger_close} s ledgers"
            )
        finally:
            if worker is not None:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(30)
            redis.terminate()
            redis.wait(10)


if __name__ == "__main__":
    main()
