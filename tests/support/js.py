"""Runs the scripts in tests/js under Node.js with the pinned JavaScript SDK (tests/run.sh
installs Debian's nodejs and the SDK; see tests/js/install.sh)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

JS_DIR = Path(__file__).resolve().parent.parent / "js"


def node(script: str, *args: str, timeout_s: float = 300, stdin: str | None = None) -> list[dict]:
    """Run `tests/js/<script>` and return its JSON lines."""
    binary = shutil.which("node")
    assert binary, "Node.js is missing: tests/run.sh installs Debian's nodejs and npm"
    assert (JS_DIR / "node_modules" / "@stellar" / "stellar-sdk").is_dir(), (
        "the JavaScript SDK is not installed: run `bash tests/js/install.sh`"
    )
    done = subprocess.run(
        [binary, str(JS_DIR / script), *args],
        cwd=JS_DIR,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def listed_checks(script: str) -> list[str]:
    binary = shutil.which("node")
    assert binary, "Node.js is missing: tests/run.sh installs Debian's nodejs and npm"
    done = subprocess.run(
        [binary, str(JS_DIR / script), "--list"], cwd=JS_DIR, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()
