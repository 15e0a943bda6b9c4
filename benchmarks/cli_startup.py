"""Benchmark: how soon `payouts --help` and each command's `--help` print, against a bare
`import typer` in the same interpreter and environment.

    .venv/bin/python benchmarks/cli_startup.py --runs 7
    .venv/bin/python benchmarks/cli_startup.py --runs 7 --only calculate funding

Every command of the command table and every subcommand of a group is timed. Each figure is
the best (and the median) wall time of --runs fresh processes, runs interleaved so a busy
machine slows every contender alike; the ratio is best against the best bare `import typer`.
CPU time (user + system of the process) is shown too: on a shared machine it moves much less
than wall time. The goal: every ratio at most 2.0.
"""

from __future__ import annotations

import argparse
import os
import resource
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


def _time(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one fresh process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--only", nargs="*", help="command names to time (default: the root and every command)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYOUTS_")} | {"COLUMNS": "100"}
    targets = _targets(args.only)
    times: dict[str, list[tuple[float, float]]] = {"import typer": []}
    for target in targets:
        times["payouts " + " ".join([*target, "--help"])] = []
    for _ in range(args.runs):
        times["import typer"].append(_time(BARE, env))
        for target in targets:
            argv = [sys.executable, "-m", "payouts.cli.main", *target, "--help"]
            times["payouts " + " ".join([*target, "--help"])].append(_time(argv, env))
    bare = min(wall for wall, _ in times["import typer"])
    bare_cpu = min(cpu for _, cpu in times["import typer"])
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, best of {args.runs}")
    print(f"{'what':36} {'best s':>7} {'median s':>9} {'ratio':>6} {'CPU s':>6} {'ratio':>6}")
    worst = worst_cpu = 0.0
    for name, samples in times.items():
        best = min(wall for wall, _ in samples)
        cpu = min(cpu for _, cpu in samples)
        worst, worst_cpu = max(worst, best / bare), max(worst_cpu, cpu / bare_cpu)
        flag = "" if best <= 2 * bare else "  over 2x"
        median = statistics.median(wall for wall, _ in samples)
        print(f"{name:36} {best:7.3f} {median:9.3f} {best / bare:6.2f} {cpu:6.3f} {cpu / bare_cpu:6.2f}{flag}")
    print(f"largest ratio: wall {worst:.2f}, CPU {worst_cpu:.2f} (goal: at most 2.00)")


if __name__ == "__main__":
    main()
