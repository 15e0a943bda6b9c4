"""Every command's help has an example, shows option types in words, and `payouts --help`
loads no heavy module."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from payouts.cli.lazy import COMMANDS, load
from payouts.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _paths() -> list[list[str]]:
    paths: list[list[str]] = []
    for name in COMMANDS:
        paths.append([name])
        command = load(name)
        for sub in getattr(command, "commands", {}):
            paths.append([name, sub])
    return paths


@pytest.mark.parametrize("path", _paths(), ids=" ".join)
def test_every_help_has_an_example_and_no_bool_type(path):
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, result.output
    assert f"payouts {path[0]}" in result.output.split("Example", 1)[1], result.output
    assert "<bool>" not in result.output and "<int>" not in result.output and "<str>" not in result.output


def test_root_help_lists_every_command_with_its_own_summary():
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "Example" in result.output and "<bool>" not in result.output
    for name, entry in COMMANDS.items():
        # the table's summary is the start of the command's own first line (no drift)
        real = load(name).get_short_help_str(200)
        assert real.startswith(entry.short_help.removesuffix("...").rstrip(" ,")), (name, real)
        assert name in result.output


def test_help_needs_no_settings_and_loads_no_heavy_module():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYOUTS_")}
    env |= {"PYTHONPATH": str(ROOT), "PAYOUTS_APPROVALS_REQUIRED": "two"}  # a bad setting: help still prints
    probe = (
        "import sys, runpy; sys.argv = ['payouts', '--help']\n"
        "try:\n    runpy.run_module('payouts.cli.main', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('sqlmodel', 'sqlalchemy', 'stellar_sdk', 'celery', 'httpx', 'pydantic_settings',"
        " 'payouts.ledger') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in result.stdout, result.stdout + result.stderr
    keys = subprocess.run(
        [sys.executable, "-m", "payouts.cli.main", "keys", "new", "--help"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert keys.returncode == 0 and "payouts keys new --out" in keys.stdout, keys.stderr
