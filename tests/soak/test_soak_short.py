"""The short soak in every test run: two months end to end on worker processes, Redis,
PostgreSQL and the sandbox with faults, outages injected every second; no invariant broken."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


# benchmarks/soak.py starts its own PostgreSQL, Redis and sandbox
@pytest.mark.slow
@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.network
def test_two_months_under_faults_keep_every_invariant(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "soak.py"),
            "--periods",
            "2",
            "--nodes",
            "60",
            "--chaos-every",
            "1",
            "--seed",
            "3",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    report = result.stdout
    assert result.returncode == 0, report[-3000:] + result.stderr[-3000:]
    assert "invariant violations 0" in report
    assert len(re.findall(r"^2025-1[12]\s+exported", report, re.MULTILINE)) == 2
    injected = re.search(r"faults injected and survived: (.*);", report).group(1)
    assert injected != "none" and re.search(r"x\d", injected), report
