"""Benchmark: the farmer export (CSV, JSON) and `publish` on a large SQLite ledger.

    .venv/bin/python benchmarks/export.py --receipts 100000 --dir var/bench

--dir picks where the ledger and outputs go (default: the system temp folder). publish creates
one file per node and farm, so a slow temp file system shows in its time.

Fills a ledger with --receipts receipts (10 periods of receipts/10 nodes; most paid in batch
transactions of 100 so every paid row carries a Merkle proof, some held, some zero) with
SQLAlchemy core, then times each step in a fresh subprocess and reports its peak RSS before
the step (imports and ledger open) and after it. Streaming shows as a flat peak: compare with
--receipts 10000. Goal: each step under 10 s at 100,000 receipts.
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
PERIODS = 10


def _peak_mb() -> float:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries that over from the parent
    through fork and exec, so a child would report the filler's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def step(url: str, what: str, out: Path) -> dict:
    """One measured step, run in its own process so its peak memory is its own."""
    sys.path.insert(0, str(ROOT))
    from sqlmodel import Session

    from payouts.export.rows import ExportFilter, iter_entries, runs_document
    from payouts.export.site import publish_site
    from payouts.export.writers import write_csv, write_json
    from payouts.ledger.db import make_engine

    engine = make_engine(url)
    with Session(engine) as session:
        session.execute(__import__("sqlalchemy").text("SELECT 1"))
        before = _peak_mb()
        started = time.perf_counter()
        if what == "csv":
            with out.open("w", encoding="utf-8", newline="") as handle:
                rows = write_csv(iter_entries(session), handle)
        elif what == "json":
            with out.open("w", encoding="utf-8") as handle:
                rows = write_json(
                    {"format": "bench"}, runs_document(session), iter_entries(session, ExportFilter()), handle
                )
        elif what == "publish":
            rows = publish_site(session, out, network="dev", horizon_url="http://127.0.0.1:8000").entries
        else:
            raise SystemExit(f"unknown step {what}")
        elapsed = time.perf_counter() - started
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) if out.is_dir() else out.stat().st_size
    return {
        "step": what,
        "rows": rows,
        "seconds": round(elapsed, 2),
        "peak_rss_before_mb": round(before, 1),
        "peak_rss_after_mb": round(_peak_mb(), 1),
        "output_mb": round(size / 2**20, 1),
    }


def fill(url: str, receipts: int) -> float:
    sys.path.insert(0, str(ROOT))
    from payouts.ledger.db import make_engine, migrate
    from tests.export.bulk import fill_ledger

    engine = make_engine(url)
    migrate(engine)
    started = time.perf_counter()
    fill_ledger(engine, nodes=receipts // PERIODS, periods=PERIODS)
    engine.dispose()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--receipts", type=int, action="append", help="receipts in the ledger (repeatable)")
    parser.add_argument("--dir", type=Path, help="folder for the ledger and outputs (default: temp)")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(step(args.url, args.step, args.out)))
        return
    for receipts in args.receipts or [100_000]:
        if args.dir is not None:
            args.dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=args.dir) as folder:
            url = f"sqlite:///{folder}/ledger.sqlite3"
            filled_s = fill(url, receipts)
            print(f"ledger: {receipts:,} receipts in {PERIODS} periods, filled in {filled_s:.1f} s")
            for what, name in (("csv", "export.csv"), ("json", "export.json"), ("publish", "site")):
                result = subprocess.run(
                    [sys.executable, __file__, "--step", what, "--url", url, "--out", str(Path(folder) / name)],
                    capture_output=True,
                    text=True,
                )
                if result.returncode != 0:
                    raise SystemExit(f"{what} failed:\n{result.stderr[-3000:]}")
                report = json.loads(result.stdout.strip().splitlines()[-1])
                goal = "ok" if report["seconds"] < 10 else "OVER 10 s"
                print(
                    f"  {what:8s} {report['rows']:>8,} rows {report['seconds']:>6.2f} s  peak RSS "
                    f"{report['peak_rss_before_mb']:.0f} -> {report['peak_rss_after_mb']:.0f} MB  "
                    f"output {report['output_mb']:.1f} MB  [{goal}]"
                )
            os.sync()


if __name__ == "__main__":
    main()
