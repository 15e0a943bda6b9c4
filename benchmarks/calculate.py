"""Benchmark: `calculate` from snapshot file to recorded run (SQLite), per grid size.

    .venv/bin/python benchmarks/calculate.py --nodes 3000 --nodes 30000
    .venv/bin/python benchmarks/calculate.py --nodes 3000 --format 2 --naive
    .venv/bin/python benchmarks/calculate.py --nodes 3000 --format 2 --naive --cli

Each size runs in a fresh subprocess so its peak memory (ru_maxrss) is its own. Snapshots are
synthesized once into --data (default /tmp/payouts-bench) and reused. `--format 2` measures
`tfgrid-snapshot/2` files (gzip JSON Lines); `--naive` also times a plain standard-library
JSON per-event loop over the same month's `/1` file, in the same run, as a yardstick; `--cli`
also times the whole command `payouts calculate --dry-run --json` (its own process, from
start to exit, output to /dev/null) on the measured file.
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


def measure(snapshot_path: Path, processes: int) -> dict:
    from payouts.ledger.db import make_engine, migrate, session_scope
    from payouts.runs.service import calculate_run
    from payouts.snapshot.load import load_snapshot

    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{folder}/ledger.sqlite3")
        migrate(engine)
        started = time.perf_counter()
        cpu_started = time.process_time()
        snapshot = load_snapshot(snapshot_path, processes=processes)
        loaded = time.perf_counter()
        with session_scope(engine) as session:
            outcome = calculate_run(session, snapshot)
        finished = time.perf_counter()
        cpu_s = time.process_time() - cpu_started
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats = snapshot.stats
    events = stats.uptime_events + stats.power_events
    return {
        "nodes": outcome.run.node_count,
        "events": events,
        "file_mb": round(snapshot.size_bytes / 1e6, 1),
        "load_s": round(loaded - started, 2),
        "wall_s": round(finished - started, 2),
        # every thread's CPU time: on a shared machine, steadier than wall time
        "cpu_s": round(cpu_s, 2),
        # the worker processes reading node lines (`--processes`), all of them
        "workers_cpu_s": round(workers.ru_utime + workers.ru_stime, 2),
        "events_per_s": round(events / (finished - started)),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        # the largest worker's own peak (forked: much of it shared with this process)
        "workers_peak_rss_mb": round(workers.ru_maxrss / 1024),
    }


def naive_loop(snapshot_path: Path) -> dict:
    """json.load the /1 file, then one Python step per uptime report (delta, cap, sum)."""
    import gzip

    started = time.perf_counter()
    raw = (
        gzip.decompress(snapshot_path.read_bytes())
        if snapshot_path.name.endswith(".gz")
        else snapshot_path.read_bytes()
    )
    document = json.loads(raw)
    last: dict[int, int] = {}
    total: dict[int, int] = {}
    for event in document["uptime_events"]:
        node_id, ts = event["node_id"], event["timestamp"]
        previous = last.get(node_id)
        if previous is not None:
            total[node_id] = total.get(node_id, 0) + min(ts - previous, 2460)
        last[node_id] = ts
    return {
        "naive_s": round(time.perf_counter() - started, 2),
        "naive_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def cli_dry_run(snapshot_path: Path, processes: int) -> dict:
    """Wall time of `payouts calculate --snapshot FILE --dry-run --json`, process start to exit."""
    from payouts.ledger.db import make_engine, migrate

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/ledger.sqlite3"
        migrate(make_engine(url))
        env = {**os.environ, "PAYOUTS_DATABASE_URL": url, "PAYOUTS_STATE_DIR": folder}
        # an installed program imports cached bytecode; without this every run compiles every module
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        command = [str(Path(sys.executable).parent / "payouts"), "calculate", "--snapshot", str(snapshot_path)]
        subprocess.run([command[0], "--help"], check=True, stdout=subprocess.DEVNULL, env=env)
        started = time.perf_counter()
        with open(os.devnull, "wb") as sink:
            subprocess.run(
                [*command, "--dry-run", "--json", "--processes", str(processes)], check=True, stdout=sink, env=env
            )
        return {"cli_dry_run_s": round(time.perf_counter() - started, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, action="append", help="grid size (repeatable)")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "payouts-bench")
    parser.add_argument("--period", default="2025-11")
    parser.add_argument("--gzip", action="store_true", help="benchmark .json.gz snapshots")
    parser.add_argument("--format", type=int, choices=(1, 2), default=1, help="snapshot format to measure")
    parser.add_argument("--naive", action="store_true", help="also time a plain json per-event loop over /1")
    parser.add_argument("--cli", action="store_true", help="also time `payouts calculate --dry-run --json`")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement, interleaved; best kept")
    parser.add_argument(
        "--processes", type=int, default=2, help="processes reading a large /2 month (as `calculate --processes`)"
    )
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--naive-one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.processes)))
        return
    if args.naive_one:
        print(json.dumps(naive_loop(args.naive_one)))
        return
    from payouts.periods import Period
    from payouts.snapshot.synthetic import write_synthetic_snapshot

    args.data.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}")
    for nodes in args.nodes or [3000]:
        v1 = args.data / f"synth-{nodes}-{args.period}.json{'.gz' if args.gzip or args.format == 2 else ''}"
        v2 = args.data / f"synth-{nodes}-{args.period}.jsonl.gz"
        for path, snapshot_format in ((v1, 1), (v2, 2)):
            needed = args.format == 2 if snapshot_format == 2 else args.format == 1 or args.naive
            if needed and not path.exists():
                started = time.perf_counter()
                period = Period.from_label(args.period)
                write_synthetic_snapshot(path, nodes=nodes, period=period, seed=1, snapshot_format=snapshot_format)
                print(f"synthesized {path} in {time.perf_counter() - started:.1f} s")
        path = v2 if args.format == 2 else v1
        best: dict = {}
        for _ in range(args.repeat):
            result = subprocess.run(
                [sys.executable, __file__, "--one", str(path), "--processes", str(args.processes)],
                check=True,
                capture_output=True,
                text=True,
            )
            line = json.loads(result.stdout.strip().splitlines()[-1])
            if args.naive:
                naive = subprocess.run(
                    [sys.executable, __file__, "--naive-one", str(v1)], check=True, capture_output=True, text=True
                )
                line.update(json.loads(naive.stdout.strip().splitlines()[-1]))
            if args.cli:
                line.update(cli_dry_run(path, args.processes))
            if args.naive and args.cli:
                line["cli_over_naive"] = round(line["cli_dry_run_s"] / line["naive_s"], 2)
            # each repetition as measured (a ratio within one repetition is timed side by side)
            print(json.dumps({"repetition": line}), file=sys.stderr)
            # times: the best run; memory: the largest
            best = (
                line
                if not best
                else {k: (max if "rss" in k or k == "events_per_s" else min)(best[k], v) for k, v in line.items()}
            )
        if args.naive and args.cli:
            # of the best times (the per-repetition ratios are printed above; the best is their min)
            best["cli_over_naive"] = round(best["cli_dry_run_s"] / best["naive_s"], 2)
        print(json.dumps({"format": args.format, "repeat": args.repeat, **best}))


if __name__ == "__main__":
    main()
