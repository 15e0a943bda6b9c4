"""Benchmark: `calculate` from snapshot file to recorded run (SQLite), per grid size.

    .venv/bin/python benchmarks/calculate.py --nodes 3000 --nodes 30000

Each size runs in a fresh subprocess so its peak memory (ru_maxrss) is its own. Snapshots are
synthesized once into --data (default /tmp/payouts-bench) and reused.
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


def measure(snapshot_path: Path) -> dict:
    from payouts.ledger.db import make_engine, migrate, session_scope
    from payouts.runs.service import calculate_run
    from payouts.snapshot.load import load_snapshot

    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/ledger.sqlite3")
        migrate(engine)
        started = time.perf_counter()
        snapshot = load_snapshot(snapshot_path)
        loaded = time.perf_counter()
        with session_scope(engine) as session:
            outcome = calculate_run(session, snapshot)
        finished = time.perf_counter()
    stats = snapshot.stats
    events = stats.uptime_events + stats.power_events
    return {
        "nodes": outcome.run.node_count,
        "events": events,
        "file_mb": round(snapshot.size_bytes / 1e6, 1),
        "load_s": round(loaded - started, 2),
        "wall_s": round(finished - started, 2),
        "events_per_s": round(events / (finished - started)),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, action="append", help="grid size (repeatable)")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "payouts-bench")
    parser.add_argument("--period", default="2025-11")
    parser.add_argument("--gzip", action="store_true", help="benchmark .json.gz snapshots")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    from payouts.periods import Period
    from payouts.snapshot.synthetic import write_synthetic_snapshot

    args.data.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    for nodes in args.nodes or [3000]:
        path = args.data / f"synth-{nodes}-{args.period}.json{'.gz' if args.gzip else ''}"
        if not path.exists():
            started = time.perf_counter()
            write_synthetic_snapshot(path, nodes=nodes, period=Period.from_label(args.period), seed=1)
            print(f"synthesized {path} in {time.perf_counter() - started:.1f} s")
        result = subprocess.run(
            [sys.executable, __file__, "--one", str(path)], check=True, capture_output=True, text=True
        )
        print(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
