"""Benchmark: how soon `payouts --help` and each command's `--help` print, against a bare
`import typer` in the same interpreter and environment.

    .venv/bin/python benchmarks/cli_startup.py --runs 7
    .venv/bin/python benchmarks/cli_startup.py --runs 7 --only calculate funding

Every command of the command table and every subcommand of a group is timed. Each figure is
the best (and the median) wall time of --runs fresh processes, runs interleaved so a busy
machine slows every contender alike; the ratio is best against the best bare `import typer`.
The goal: every ratio at most 2.0.
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


def _targets(only: list[str] | None) -> list[list[str]]:
    """The root, then every command (or those in `only`) and each group's subcommands."""
    sys.path.insert(0, str(ROOT))
    from payouts.cli.lazy import COMMANDS, load

    targets: list[list[str]] = [[]]
    for name in COMMANDS:
        if only and name not in only:
            continue
        targets.append([name])
        targets.extend([name, sub] for sub in getattr(load(name), "commands", {}))
    return targets


def _time(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--only", nargs="*", help="command names to time (default: the root and every command)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYOUTS_")} | {"COLUMNS": "100"}
    targets = _targets(args.only)
    times: dict[str, list[float]] = {"import typer": []}
    for target in targets:
        times["payouts " + " ".join([*target, "--help"])] = []
    for _ in range(args.runs):
        times["import typer"].append(_time(BARE, env))
        for target in targets:
            argv = [sys.executable, "-m", "payouts.cli.main", *target, "--help"]
            times["payouts " + " ".join([*target, "--help"])].append(_time(argv, env))
    bare = min(times["import typer"])
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, best of {args.runs}")
    print(f"{'what':36} {'best s':>7} {'median s':>9} {'ratio':>6}")
    worst = 0.0
    for name, samples in times.items():
        best = min(samples)
        worst = max(worst, best / bare)
        flag = "" if best <= 2 * bare else "  over 2x"
        print(f"{name:36} {best:7.3f} {statistics.median(samples):9.3f} {best / bare:6.2f}{flag}")
    print(f"largest ratio: {worst:.2f} (goal: at most 2.00)")


if __name__ == "__main__":
    main()
