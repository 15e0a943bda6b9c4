"""Benchmark: building the review `payouts show` prints, on a SQLite ledger.

    .venv/bin/python benchmarks/review.py --nodes 3000

Synthesizes and records --months consecutive months of --nodes nodes (the last one is
reviewed against the earlier ones: changes, outliers, a repeated month), then times
`build_review` (without Horizon: balances say unavailable) and the manifest it includes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=3000)
    parser.add_argument("--months", type=int, default=4)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from sqlmodel import Session

    from payouts.ledger.db import make_engine, migrate
    from payouts.periods import Period
    from payouts.runs.review import ReviewLimits, build_review
    from payouts.runs.service import calculate_run
    from payouts.snapshot.load import load_snapshot
    from payouts.snapshot.synthetic import write_synthetic_snapshot

    with tempfile.TemporaryDirectory() as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'ledger.sqlite3'}")
        migrate(engine)
        run = None
        with Session(engine, expire_on_commit=False) as session:
            for month in range(args.months):
                period = Period.from_label("2025-11")
                period = Period(period.offset + month)
                path = Path(folder) / f"{period.label}.json.gz"
                write_synthetic_snapshot(path, nodes=args.nodes, period=period, seed=month, network="dev")
                run = calculate_run(session, load_snapshot(path)).run
                session.commit()
            assert run is not None
            started = time.perf_counter()
            review = build_review(session, run, limits=ReviewLimits())
            elapsed = time.perf_counter() - started
        print(
            f"review of {args.nodes:,} nodes against {args.months - 1} earlier months: {elapsed:.2f} s "
            f"({review.manifest_payment_count:,} payments signed, {len(review.outliers)} outliers, "
            f"{len(review.exceedances)} exceedances)"
        )


if __name__ == "__main__":
    main()
