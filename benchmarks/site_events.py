"""Benchmark: what node-month event lists add to the status site.

    .venv/bin/python benchmarks/site_events.py --nodes 3000 --dir var/bench-events

Writes a synthetic month (`payouts synth`'s generator: seed 1, period 2025-11, reports every
40 min with jitter, reboots, outages, farmerbot sleepers, a few nodes breaking the uptime rules),
calculates it into a fresh SQLite ledger with the snapshot frozen where the wiring keeps it,
then publishes the site four times: without events (as before), with events from the frozen
snapshot (cold: no cached lists), again (warm: the lists read from the cache), and once more
without events. Reports each publish's wall and CPU time, the site's size on disk and gzipped (as a
static host would serve it), and the node shards' sizes.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _sizes(site: Path) -> dict:
    files = [p for p in site.rglob("*") if p.is_file()]
    nodes = [p for p in (site / "data" / "nodes").glob("*.json")]
    node_bytes = [p.stat().st_size for p in nodes]
    return {
        "files": len(files),
        "site_mb": round(sum(p.stat().st_size for p in files) / 2**20, 2),
        "site_gzip_mb": round(sum(len(gzip.compress(p.read_bytes(), 6)) for p in files) / 2**20, 2),
        "node_shards_mb": round(sum(node_bytes) / 2**20, 2),
        "node_shard_median_kb": round(statistics.median(node_bytes) / 1024, 1),
        "node_shard_max_kb": round(max(node_bytes) / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3000)
    parser.add_argument("--dir", type=Path, default=Path("var/bench-events"))
    parser.add_argument("--format", type=int, choices=(1, 2), default=2)
    args = parser.parse_args()

    from sqlmodel import Session

    from payouts.export.node_events import EventSource
    from payouts.export.site import publish_site
    from payouts.ledger.db import make_engine, migrate, session_scope
    from payouts.periods import Period
    from payouts.runs.service import calculate_run
    from payouts.snapshot.load import load_snapshot
    from payouts.snapshot.synthetic import write_synthetic_snapshot

    folder = args.dir
    folder.mkdir(parents=True, exist_ok=True)
    period = Period(91)  # 2025-11
    frozen = folder / "frozen"
    frozen.mkdir(exist_ok=True)
    suffix = ".jsonl.gz" if args.format == 2 else ".json.gz"
    snapshot_path = frozen / f"tfgrid-snapshot-{period.offset}-{args.nodes}{suffix}"
    if not snapshot_path.exists():
        write_synthetic_snapshot(snapshot_path, nodes=args.nodes, period=period, seed=1, snapshot_format=args.format)
    ledger = folder / f"ledger-{args.nodes}.sqlite3"
    ledger.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{ledger}")
    migrate(engine)
    with session_scope(engine) as session:
        calculate_run(session, load_snapshot(snapshot_path))

    cache = folder / "cache"
    for stale in cache.glob("*") if cache.exists() else []:
        stale.unlink()
    results = {}
    for name, source in (
        ("without events", None),
        ("with events, cold", EventSource(frozen, cache)),
        ("with events, cached", EventSource(frozen, cache)),
        ("without events, again", None),  # the first publish also warms the file system
    ):
        site = folder / f"site-{name.replace(' ', '-').replace(',', '')}"
        with Session(engine) as session:
            started, cpu = time.perf_counter(), time.process_time()
            publish_site(session, site, network="dev", horizon_url="http://127.0.0.1:8000", events=source)
            results[name] = {
                "seconds": round(time.perf_counter() - started, 2),
                # this process's CPU time: steadier than wall time on a shared machine
                "cpu_seconds": round(time.process_time() - cpu, 2),
                **_sizes(site),
            }
    engine.dispose()
    cached = sum(p.stat().st_size for p in cache.glob("*"))
    print(
        json.dumps(
            {"nodes": args.nodes, "format": args.format, "cache_mb": round(cached / 2**20, 2), **results}, indent=2
        )
    )


if __name__ == "__main__":
    main()
