"""Bad user input gives a clear error naming what and where, with nothing half-done: an argument
holding bytes that are not UTF-8 (a shell's `$'\\xff'`, which Python turns into a lone surrogate).

Found here and fixed: `payouts pause --reason $'bad \\xff'` logged `payouts.paused`, then failed
writing the reason with "'utf-8' codec can't encode character '\\udcff'", naming no argument, and
nothing was paused. Every argument is now checked before any command runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.cli.test_operator_failures import ROOT, assert_short_failure


def _payouts(*args: bytes | str, env: dict[str, str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PAYOUTS_")}
    base |= {"PYTHONPATH": str(ROOT), "PAYOUTS_STATE_DIR": os.environ["PAYOUTS_STATE_DIR"], **env}
    return subprocess.run(
        [sys.executable, "-m", "payouts.cli.main", *args], env=base, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "position"),
    [
        ((b"pause", b"--reason", b"bad \xff byte"), 3),
        ((b"reject", b"1", b"--reason", b"\xc3("), 4),
        ((b"calculate", b"--snapshot", b"/tmp/\xfe.json"), 3),
    ],
    ids=["pause", "reject", "snapshot_path"],
)
def test_bad_input_an_argument_that_is_not_utf8_is_named_and_nothing_is_done(sqlite_url, args, position):
    env = {"PAYOUTS_DATABASE_URL": sqlite_url}
    result = _payouts(*args, env=env)
    assert result.returncode == 2
    text = assert_short_failure(result, f"argument {position} is not valid UTF-8 text", max_lines=3)
    assert "payouts.paused" not in text and "codec" not in text
    resumed = _payouts("resume", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "were not paused" in resumed.stdout + resumed.stderr
