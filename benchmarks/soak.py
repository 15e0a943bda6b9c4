"""Soak: many consecutive months end to end under faults, with the invariants checked after each.

    .venv/bin/python benchmarks/soak.py --periods 3 --nodes 60            # a short soak
    .venv/bin/python benchmarks/soak.py --periods 12 --nodes 300 --minutes 60

Everything is on loopback and started here: Redis, PostgreSQL (the ledger), the sandbox
network with submission faults on, and real Celery worker processes. For each period the soak
drops the period's snapshot into the drop folder, fires the monthly job (twice, like a doubled
trigger), approves the run when it waits, and keeps firing while it pays. Meanwhile it kills
workers with SIGKILL, restarts Redis, PostgreSQL and the sandbox at random, and turns on a
lagging replica (reads some seconds behind the chain, landed submissions answered 504) until the
next outage. Once a period, mid-run, it restores an older backup of the ledger: the backup is
taken at the period's first outage, and a few outages later every worker is stopped (SIGKILL),
the ledger database is replaced by the backup (pg_restore), `payouts recover RUN` scans the
chain (a real process), and the workers start again. After each period
it checks: each receipt paid at most once; every payable receipt paid or held with a reason;
chain totals equal ledger totals; the run is exported, or stopped with a reason. It ends with a
table of faults injected and survived, and exits 1 on any invariant violation.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FAULTS = "504_after_apply=0.05,drop_after_apply=0.03,504_without_apply=0.03,delay=0.05:2,congestion=0.05"


def invariant_violations(db, client, document: dict, run_id: int) -> list[str]:
    """The exactly-once invariants for one run, as a list of what is wrong (empty: all hold)."""
    from sqlmodel import Session, select

    from payouts.ledger.models import Payment, Run

    problems: list[str] = []
    payout = document["payout"]["public_key"]
    chain = [
        r
        for r in client.payments(payout)
        if r.get("type") == "payment" and r.get("from") == payout and r.get("transaction_successful", True)
    ]
    with Session(db) as session:
        payments = session.exec(select(Payment)).all()
        run = session.get(Run, run_id)
    paid = [p for p in payments if p.status == "paid"]
    twice = [h for h, n in Counter(p.receipt_hash for p in paid).items() if n > 1]
    if twice:
        problems.append(f"receipts paid twice: {twice[:3]}")
    chain_per_tx = Counter(r["transaction_hash"] for r in chain)
    ledger_per_tx = Counter(p.tx_hash for p in paid)
    if chain_per_tx != ledger_per_tx:
        problems.append(f"chain and ledger differ on {len(set(chain_per_tx) ^ set(ledger_per_tx))} transactions")
    chain_units = sum(int(r["amount"].replace(".", "")) for r in chain)
    ledger_units = sum(p.amount_tft_units for p in paid)
    if chain_units != ledger_units:
        problems.append(f"chain total {chain_units} units != ledger total {ledger_units}")
    for payment in payments:
        if (
            payment.run_id == run_id
            and payment.status not in ("paid", "retried")
            and not (payment.status == "held" and payment.hold_reason)
        ):
            problems.append(f"payment {payment.id} is {payment.status} without a reason")
            break
    if run.status not in ("exported", "stopped") or (run.status == "stopped" and not run.status_reason):
        problems.append(f"run {run_id} ended the period as {run.status} {run.status_reason!r}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--periods", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--faults", default=FAULTS, help="sandbox submission faults (payouts sandbox up --help)")
    parser.add_argument("--chaos-every", type=float, default=2.0, help="seconds between injected outages")
    parser.add_argument("--minutes", type=float, default=20.0, help="stop starting new periods after this")
    parser.add_argument("--period-timeout", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the soak's folder (logs, ledger) afterwards")
    parser.add_argument("--no-lag", action="store_true", help="leave out the lagging-replica outage")
    parser.add_argument("--no-restore", action="store_true", help="leave out the restore-then-recover event")
    args = parser.parse_args()

    from pydantic import SecretStr
    from sqlmodel import Session, select
    from stellar_sdk import Keypair

    from config.settings import Settings
    from payouts.ledger.db import make_engine, migrate, session_scope
    from payouts.ledger.models import Run
    from payouts.periods import Period
    from payouts.runs.approvals import approve_run, build_manifest, sign_manifest
    from payouts.sandbox import running_sandbox
    from payouts.sandbox.accounts import fund_payout_account, init_sandbox
    from payouts.sandbox.faults import FaultSpec
    from payouts.snapshot.synthetic import write_synthetic_snapshot
    from payouts.stellar.horizon import HorizonClient
    from tests.support.servers import PostgresServer, RedisServer

    # a SIGTERM (a time limit) still stops the workers and servers this soak started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    rng = random.Random(args.seed)
    started = time.monotonic()
    first = Period.from_label("2025-11")
    injected: Counter = Counter()
    violations: list[str] = []
    rows: list[tuple] = []
    folder = Path(tempfile.mkdtemp(prefix="payouts-soak-", dir=Path.cwd()))
    redis_server = RedisServer.start(dir=folder / "redis")
    postgres = PostgresServer.start()
    workers: list[subprocess.Popen] = []
    recovered: list[str] = []
    stops: list[str] = []
    try:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={postgres.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute("CREATE DATABASE soak")
        ledger_url = postgres.url("soak")
        db = make_engine(ledger_url)
        migrate(db)
        with running_sandbox(
            ledger_close_s=0.2,
            ops_per_ledger=10_000,
            submission_timeout_s=3,
            state_dir=folder / "sandbox",
            seed=args.seed,
        ) as sandbox:
            accounts = folder / "accounts.json"
            document = init_sandbox(sandbox.url, accounts, farmers=20, channels=4, without_trustline=1).document
            fund_payout_account(sandbox.url, document, document["treasury_tft_units"])
            client = HorizonClient(sandbox.url)
            drop = folder / "state" / "snapshots"
            drop.mkdir(parents=True)
            approver = Keypair.random()
            last = Period(first.offset + args.periods - 1)
            settings = Settings(
                state_dir=folder / "state",
                database_url=SecretStr(ledger_url),
                broker_url=SecretStr(redis_server.url),
                network="dev",
                horizon_url=sandbox.url,
                stellar_accounts_file=accounts,
                approvers=[approver.public_key],
                approvals_required=1,
                first_period=first.label,
                last_period=last.label,
                snapshot_drop_folder=drop,
                tx_timeout_s=20,
                lease_ttl_s=3,
                pay_task_budget_s=3,
                visibility_timeout_s=5,
            )
            env = {
                **os.environ,
                "PAYOUTS_STATE_DIR": str(settings.state_dir),
                "PAYOUTS_DATABASE_URL": ledger_url,
                "PAYOUTS_BROKER_URL": redis_server.url,
                "PAYOUTS_NETWORK": "dev",
                "PAYOUTS_HORIZON_URL": sandbox.url,
                "PAYOUTS_STELLAR_ACCOUNTS_FILE": str(accounts),
                "PAYOUTS_APPROVERS": approver.public_key,
                "PAYOUTS_APPROVALS_REQUIRED": "1",
                "PAYOUTS_FIRST_PERIOD": first.label,
                "PAYOUTS_LAST_PERIOD": last.label,
                "PAYOUTS_SNAPSHOT_DROP_FOLDER": str(drop),
                "PAYOUTS_TX_TIMEOUT_S": "20",
                "PAYOUTS_LEASE_TTL_S": "3",
                "PAYOUTS_PAY_TASK_BUDGET_S": "3",
                "PAYOUTS_VISIBILITY_TIMEOUT_S": "5",
                "PAYOUTS_LOG_FORMAT": "json",
            }
            os.environ.update({k: v for k, v in env.items() if k.startswith("PAYOUTS_")})
            from tests.support.celery import use_settings
            from workers.tasks import monthly_job

            use_settings(settings)

            def start_worker(name: str) -> subprocess.Popen:
                log = open(folder / f"{name}.log", "w")
                return subprocess.Popen(
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
                        "--hostname",
                        f"{name}@%h",
                        "--loglevel",
                        "WARNING",
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )

            workers.extend(start_worker(f"w{n}") for n in range(args.workers))
            spawned = args.workers

            def trigger() -> None:
                try:
                    monthly_job.delay()
                except Exception:  # noqa: BLE001 - Redis may be restarting: the next trigger comes
                    injected["trigger lost (broker down)"] += 1

            def restore(backup_file: Path, run_id: int) -> None:
                """RUNBOOK's restore: stop the workers, put the backup in the ledger's place,
                `payouts recover RUN`, start the workers again."""
                nonlocal spawned
                for victim in workers:
                    os.killpg(victim.pid, signal.SIGKILL)
                    victim.wait(10)
                workers.clear()
                # what the killed workers sent lands (or not) before the restored ledger looks
                settle = time.monotonic() + 30
                while sandbox.chain.queue and time.monotonic() < settle:
                    time.sleep(0.1)
                time.sleep(0.5)
                with sandbox.chain.lock:
                    queued = [
                        (p.source_id[:6], p.sequence, p.not_before_ledger, p.hash_hex[:10])
                        for p in sandbox.chain.queue.values()
                    ]
                    accounts = {
                        a[:6]: sandbox.chain.accounts[a].seq_num
                        for a in {p.source_id for p in sandbox.chain.queue.values()}
                        if a in sandbox.chain.accounts
                    }
                with open(folder / "restores.log", "a") as note:
                    note.write(
                        f"{time.strftime('%H:%M:%S')} run {run_id}: ledger {sandbox.chain.latest.sequence} "
                        f"lag {sandbox.view.lag_s} queue {queued} seq {accounts}\n"
                    )
                db.dispose()
                with psycopg.connect(
                    f"host=127.0.0.1 port={postgres.port} user=postgres dbname=postgres", autocommit=True
                ) as conn:
                    conn.execute("DROP DATABASE soak WITH (FORCE)")
                    conn.execute("CREATE DATABASE soak")
                pg_restore = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_restore"))))
                subprocess.run(
                    [str(pg_restore), "--no-owner", "-h", "127.0.0.1", "-p", str(postgres.port), "-U", "postgres"]
                    + ["-d", "soak", str(backup_file)],
                    check=True,
                    capture_output=True,
                )
                done = subprocess.run(
                    [sys.executable, "-m", "payouts.cli.main", "recover", str(run_id)],
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                (folder / f"recover-{run_id}.log").write_text(done.stdout + done.stderr)
                recovered.append(f"run {run_id}: exit {done.returncode}: {(done.stdout + done.stderr).strip()[-300:]}")
                if done.returncode != 0:
                    violations.append(f"payouts recover {run_id} failed: {recovered[-1]}")
                for _ in range(args.workers):
                    spawned += 1
                    workers.append(start_worker(f"w{spawned}"))

            lagging = False

            def chaos() -> None:
                nonlocal spawned, lagging
                if lagging:  # a lagging replica lasts until the next outage
                    sandbox.view.set_lag(0.0)
                    lagging = False
                choices = ["kill worker", "restart redis", "restart postgresql", "restart sandbox", "duplicate trigger"]
                fault = rng.choice(choices + ([] if args.no_lag else ["lagging replica"]))
                if fault == "lagging replica":
                    sandbox.view.set_lag(rng.choice([1.0, 2.0, 3.0]))
                    lagging = True
                elif fault == "kill worker":
                    victim = workers.pop(rng.randrange(len(workers)))
                    os.killpg(victim.pid, signal.SIGKILL)
                    victim.wait(10)
                    spawned += 1
                    workers.append(start_worker(f"w{spawned}"))
                elif fault == "restart redis":
                    port, data = redis_server.port, redis_server.dir
                    redis_server.stop()
                    time.sleep(0.5)
                    redis_server.process = RedisServer.start(port=port, dir=data).process
                elif fault == "restart postgresql":
                    postgres.restart()
                elif fault == "restart sandbox":
                    sandbox.restart()
                else:
                    trigger()
                    trigger()
                injected[fault] += 1

            for index in range(args.periods):
                if time.monotonic() - started > args.minutes * 60:
                    break
                period = Period(first.offset + index)
                write_synthetic_snapshot(
                    drop / f"{period.label}.json.gz",
                    nodes=args.nodes,
                    period=period,
                    seed=args.seed + index,
                    network="dev",
                    farm_addresses=[f["public_key"] for f in document["farmers"]],
                )
                sandbox.faults.spec = FaultSpec.parse(args.faults)
                period_started = time.monotonic()
                trigger()
                trigger()

                def run_row(period=period) -> Run | None:
                    try:
                        with Session(db) as session:
                            return session.exec(
                                select(Run).where(
                                    Run.period_offset == period.offset, Run.status.notin_(["replaced", "rejected"])
                                )
                            ).first()
                    except Exception:  # noqa: BLE001 - PostgreSQL may be restarting
                        return None

                approved = False
                next_chaos = time.monotonic() + args.chaos_every
                outages = 0
                backup_file: Path | None = None
                backup_at = 0
                restored = False
                restore_after = rng.randint(2, 5)  # outages between the backup and the restore
                while time.monotonic() - period_started < args.period_timeout:
                    run = run_row()
                    if run is not None and run.status == "calculated" and not approved:
                        with session_scope(db) as session:
                            fresh = session.get(Run, run.id)
                            approve_run(
                                session,
                                fresh,
                                public_key=approver.public_key,
                                signature_b64=sign_manifest(build_manifest(session, fresh), approver),
                                approvers=[approver.public_key],
                                required=1,
                            )
                        approved = True
                        trigger()
                    if run is not None and run.status in ("exported", "stopped"):
                        break
                    if approved and time.monotonic() >= next_chaos:
                        outages += 1
                        if not args.no_restore and backup_file is None:
                            from payouts.ledger.db import BackupError, backup

                            try:  # mid-run: the run is approved or paying
                                backup_file = backup(ledger_url, folder / f"{period.label}-{outages}.backup")
                                backup_at = outages
                            except BackupError:
                                pass  # PostgreSQL restarting: the next outage takes it
                        if (
                            backup_file is not None
                            and not restored
                            and outages >= backup_at + restore_after
                            and run is not None
                        ):
                            restore(backup_file, run.id)
                            restored = True
                            injected["restore older backup, then payouts recover"] += 1
                        else:
                            chaos()
                        next_chaos = time.monotonic() + args.chaos_every
                        trigger()  # like beat: the monthly job picks up whatever a fault cost
                    time.sleep(0.5)
                sandbox.faults.spec = FaultSpec.parse(None)
                sandbox.view.set_lag(0.0)
                lagging = False
                run = run_row()
                found = invariant_violations(db, client, document, run.id) if run else ["no run was calculated"]
                violations.extend(f"{period.label}: {v}" for v in found)
                with Session(db) as session:
                    from payouts.ledger.models import Payment

                    counts = Counter(p.status for p in session.exec(select(Payment).where(Payment.run_id == run.id)))
                rows.append(
                    (
                        period.label,
                        run.status if run else "-",
                        counts.get("paid", 0),
                        counts.get("held", 0),
                        f"{time.monotonic() - period_started:.0f} s",
                        "ok" if not found else "VIOLATED",
                    )
                )
                if run is not None and run.status == "stopped":
                    stops.append(f"{period.label}: run {run.id} stopped: {run.status_reason}")
    finally:
        for worker in workers:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGKILL)
        redis_server.stop()
        postgres.stop()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)

    print(f"{'period':<8} {'status':<9} {'paid':>5} {'held':>5} {'time':>6}  invariants")
    for row in rows:
        print(f"{row[0]:<8} {row[1]:<9} {row[2]:>5} {row[3]:>5} {row[4]:>6}  {row[5]}")
    print(
        "faults injected and survived: "
        + (", ".join(f"{k} x{v}" for k, v in sorted(injected.items())) or "none")
        + f"; sandbox submission faults: {args.faults}"
    )
    print(
        f"periods {len(rows)}, payments paid {sum(r[2] for r in rows)}, "
        f"invariant violations {len(violations)}, {time.monotonic() - started:.0f} s"
    )
    for line in stops:
        print(f"STOPPED {line}")
    for line in recovered:
        print(f"recovered {line}")
    for violation in violations:
        print(f"VIOLATION {violation}")
    return 1 if violations or len(rows) < min(args.periods, 1) else 0


if __name__ == "__main__":
    sys.exit(main())
