"""Benchmark: build a month's snapshot from the loopback indexer, per grid size.

    .venv/bin/python benchmarks/snapshot_build.py --nodes 3000 [--verify]

A synthetic month (cached in --data, default /tmp/payouts-bench) is served by the loopback
indexer (tests/sources/indexer_server.py) in its own process; the build runs in a fresh
subprocess with the builder's default page sizes, so its peak memory (ru_maxrss) is its own.
--verify also calculates both snapshots and checks that every receipt hash is equal.
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


def measure(graphql_url: str, gridproxy_url: str, period_label: str, out: Path) -> dict:
    from payouts.periods import Period
    from payouts.sources.indexer import build_snapshot

    started = time.perf_counter()
    summary = build_snapshot(
        out, period=Period.from_label(period_label), network="dev", graphql_url=graphql_url, gridproxy_url=gridproxy_url
    )
    wall_s = time.perf_counter() - started
    return {
        "nodes": summary.nodes,
        "uptime_events": summary.uptime_events,
        "power_events": summary.power_events,
        "requests": summary.requests,
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
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        graphql_url, gridproxy_url, out = args.one
        print(json.dumps(measure(graphql_url, gridproxy_url, args.period, Path(out))))
        return
    from payouts.periods import Period
    from payouts.snapshot.synthetic import write_synthetic_snapshot

    args.data.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    for nodes in args.nodes or [3000]:
        synthetic = args.data / f"synth-{nodes}-{args.period}.json"
        if not synthetic.exists():
            write_synthetic_snapshot(synthetic, nodes=nodes, period=Period.from_label(args.period), seed=1)
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
            built = args.data / f"built-{nodes}-{args.period}.json"
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


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
