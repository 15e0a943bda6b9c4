"""Benchmark: build a month's snapshot from the loopback indexer, per grid size.

    .venv/bin/python benchmarks/snapshot_build.py --nodes 3000 [--verify]
    .venv/bin/python benchmarks/snapshot_build.py --real --nodes 3000 [--history 11] [--explain]

A synthetic month (cached in --data, default /tmp/payouts-bench) is served by the loopback
indexer (tests/sources/indexer_server.py) in its own process, or with --real by the indexer's
own GraphQL server (tests/indexer_js, installed by its install.sh) over a PostgreSQL of its own
whose tables are seeded as the indexer's processor writes them; --history N adds N earlier
months of uptime, power, bill and traffic reports (the month's, shifted back) so the event
tables hold N + 1 months, and --explain logs every SQL statement's plan (auto_explain) and prints
a summary of how each event table was read. The build runs in a fresh subprocess with the
builder's default page sizes, so its peak memory (ru_maxrss) is its own. --verify also
calculates both snapshots and checks that every receipt hash is equal.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(graphql_url: str, gridproxy_url: str, period_label: str, out: Path, policies: Path) -> dict:
    from payouts.periods import Period
    from payouts.sources.indexer import BuildOptions, build_snapshot
    from payouts.sources.policies import load_policy_file

    started = time.perf_counter()
    summary = build_snapshot(
        out,
        period=Period.from_label(period_label),
        network="dev",
        graphql_url=graphql_url,
        gridproxy_url=gridproxy_url or None,
        options=BuildOptions(policy_file=load_policy_file(policies)),
    )
    wall_s = time.perf_counter() - started
    return {
        "nodes": summary.nodes,
        "uptime_events": summary.uptime_events,
        "power_events": summary.power_events,
        "requests": summary.requests,
        "slowest_request_s": round(summary.slowest_request_s, 2),
        "file_mb": round(out.stat().st_size / 1e6, 1),
        "wall_s": round(wall_s, 2),
        "events_per_s": round(summary.uptime_events / wall_s),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def verify(synthetic: Path, built: Path) -> str:
    from payouts.calculation.engine import calculate_period
    from payouts.snapshot.load import load_snapshot

    expected = calculate_period(load_snapshot(synthetic))
    got = calculate_period(load_snapshot(built))
    same = [r.receipt_hash for r in expected.receipts] == [r.receipt_hash for r in got.receipts]
    return f"receipts identical: {same and expected.totals == got.totals} ({got.totals.tft:,} TFT units)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, action="append", help="grid size (repeatable)")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "payouts-bench")
    parser.add_argument("--period", default="2025-11")
    parser.add_argument("--verify", action="store_true", help="calculate both snapshots and compare receipts")
    parser.add_argument("--real", action="store_true", help="the indexer's own GraphQL server over PostgreSQL")
    parser.add_argument("--history", type=int, default=0, help="earlier months of event rows (--real)")
    parser.add_argument("--explain", action="store_true", help="log and summarise every SQL plan (--real)")
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        graphql_url, gridproxy_url, out, policies = args.one
        print(json.dumps(measure(graphql_url, gridproxy_url, args.period, Path(out), Path(policies))))
        return
    from payouts.periods import Period
    from payouts.snapshot.synthetic import write_synthetic_snapshot
    from tests.sources.indexer_server import policy_file_for

    args.data.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    for nodes in args.nodes or [3000]:
        synthetic = args.data / f"synth-{nodes}-{args.period}.json"
        if not synthetic.exists():
            write_synthetic_snapshot(synthetic, nodes=nodes, period=Period.from_label(args.period), seed=1)
        policies = policy_file_for(synthetic, args.data / f"policies-{nodes}.json")
        built = args.data / f"built-{nodes}-{args.period}.json"
        if args.real:
            run_real(args, synthetic, policies, built)
            if args.verify:
                print(verify(synthetic, built))
            continue
        started = time.perf_counter()
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.sources.indexer_server", "--snapshot", str(synthetic)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            port = int(server.stdout.readline().split()[1])
            print(f"loopback indexer for {nodes} nodes ready in {time.perf_counter() - started:.1f} s")
            result = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--period",
                    args.period,
                    "--one",
                    f"http://127.0.0.1:{port}/graphql",
                    f"http://127.0.0.1:{port}",
                    str(built),
                    str(policies),
                ],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            print(result.stdout.strip().splitlines()[-1])
        finally:
            server.terminate()
            server.wait()
        if args.verify:
            print(verify(synthetic, built))


def run_real(args, synthetic: Path, policies: Path, built: Path) -> None:
    import psycopg

    from tests.sources.indexer_server import IndexerData
    from tests.sources.real_indexer import RealIndexer, create_tables, seed, seed_history
    from tests.support.servers import PostgresServer

    postgres = PostgresServer.start()
    try:
        started = time.perf_counter()
        data = IndexerData.from_snapshot(synthetic)
        name = "indexer_bench"
        with psycopg.connect(
            f"host=127.0.0.1 port={postgres.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        indexer = RealIndexer(postgres, name, args.data / "graphql-server.log")
        with indexer.connect() as conn:
            create_tables(conn)
            seed(conn, data)
            if args.history:
                seed_history(conn, data, args.history)
            counts = {
                table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
                for table in ("uptime_event", "power_state_report", "contract_bill_report", "nru_consumption")
            }
            if args.explain:
                conn.execute(f"ALTER DATABASE \"{name}\" SET session_preload_libraries = 'auto_explain'")
                conn.execute(f'ALTER DATABASE "{name}" SET auto_explain.log_min_duration = 0')
                conn.execute(f'ALTER DATABASE "{name}" SET auto_explain.log_analyze = on')
        print(f"seeded {counts} ({args.history} earlier month(s)) in {time.perf_counter() - started:.1f} s")
        log = postgres.data_dir.parent / "postgres.log"
        log_start = log.stat().st_size if log.exists() else 0
        with indexer.start():
            result = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--period",
                    args.period,
                    "--one",
                    indexer.graphql_url,
                    "",
                    str(built),
                    str(policies),
                ],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            print(result.stdout.strip().splitlines()[-1])
        if args.explain:
            summarise_plans(log.read_text(errors="replace")[log_start:])
    finally:
        postgres.stop()


def summarise_plans(text: str) -> None:
    """How each event table was read over the build: the plan node that touched it, the rows it
    read (actual rows, plus rows removed by its filter) per statement, worst case first."""
    import re

    plans = text.split("LOG:  duration: ")[1:]
    report: dict[tuple[str, str], list[int]] = {}
    for plan in plans:
        for match in re.finditer(
            r"(Seq Scan|Index Scan|Index Only Scan|Bitmap Heap Scan) (?:using \S+ )?on (\w+).*?"
            r"actual time=\S+ rows=(\d+) loops=(\d+)\)(?:\n\s+(?:Index Cond|Filter|Recheck Cond): [^\n]*)*"
            r"(?:\n\s+Rows Removed by Filter: (\d+))?",
            plan,
        ):
            kind, table, rows, loops, removed = match.groups()
            if table in (
                "uptime_event",
                "power_state_report",
                "power_target_report",
                "contract_bill_report",
                "nru_consumption",
            ):
                read = int(rows) * int(loops) + int(removed or 0)
                report.setdefault((table, kind), []).append(read)
    for (table, kind), reads in sorted(report.items()):
        print(f"  {table:22} {kind:16} statements {len(reads):5}  rows read: max {max(reads):,}, total {sum(reads):,}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
