"""Benchmark: how soon `payouts --help` and each command's `--help` print, against a bare
`import typer` in the same interpreter and environment.

    .venv/bin/python benchmarks/cli_startup.py --runs 15

Each figure is the median wall time of --runs fresh processes (runs interleaved, so a busy
machine slows every contender alike). The goal: every ratio at most 2.0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BARE = [sys.executable, "-c", "import typer"]


def _commands() -> list[list[str]]:
    sys.path.insert(0, str(ROOT))
    from payouts.cli.lazy import COMMANDS

    return [[], *([name] for name in COMMANDS)]


def _time(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--only", nargs="*", help="command names to time (default: the root and every command)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYOUTS_")} | {"COLUMNS": "100"}
    targets = [[], *([name] for name in args.only)] if args.only else _commands()
    times: dict[str, list[float]] = {"import typer": []}
    for target in targets:
        times["payouts " + " ".join([*target, "--help"])] = []
    for _ in range(args.runs):
        times["import typer"].append(_time(BARE, env))
        for target in targets:
            argv = [sys.executable, "-m", "payouts.cli.main", *target, "--help"]
            times["payouts " + " ".join([*target, "--help"])].append(_time(argv, env))
    bare = statistics.median(times["import typer"])
    print(f"{'what':32} {'median s':>9} {'ratio':>6}")
    for name, samples in times.items():
        median = statistics.median(samples)
        flag = "" if median <= 2 * bare else "  over 2x"
        print(f"{name:32} {median:9.3f} {median / bare:6.2f}{flag}")


if __name__ == "__main__":
    main()
