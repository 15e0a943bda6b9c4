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


#: modules a command's --help must not load: the ledger, Stellar, Celery, HTTP, numpy, pydantic, rich
HEAVY_MODULES = (
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "stellar_sdk",
    "celery",
    "kombu",
    "redis",
    "httpx",
    "numpy",
    "pydantic",
    "pydantic_settings",
    "structlog",
    "rich",
    "starlette",
    "hypercorn",
    "payouts.ledger",
)

_MODULE_PROBE = """
import sys
from typer._click import Context
from payouts.cli.lazy import COMMANDS, finish, load
import importlib
importlib.import_module(sys.argv[1])
loaded_by_import = sorted(m for m in {heavy!r} if m in sys.modules)
helps = 0
for name, entry in COMMANDS.items():
    if entry.target.split(":")[0] != sys.argv[1]:
        continue
    command = finish(load(name), name, Context(load(name)))
    with Context(command, info_name=name) as ctx:
        command.get_help(ctx)
        helps += 1
        for sub_name, sub in getattr(command, "commands", {{}}).items():
            with Context(sub, info_name=sub_name, parent=ctx) as sub_ctx:
                sub.get_help(sub_ctx)
                helps += 1
print("IMPORT", loaded_by_import)
print("HELP", sorted(m for m in {heavy!r} if m in sys.modules), helps)
"""


@pytest.mark.parametrize("module", sorted({entry.target.split(":")[0] for entry in COMMANDS.values()}))
def test_command_module_loads_no_heavy_module(module):
    """Importing a command's module and printing its help (and its subcommands') loads none of
    the heavy modules: they are imported inside the commands, when one runs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYOUTS_")} | {"PYTHONPATH": str(ROOT)}
    probe = _MODULE_PROBE.format(heavy=HEAVY_MODULES)
    result = subprocess.run([sys.executable, "-c", probe, module], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if line.startswith(("IMPORT", "HELP")))
    assert lines["IMPORT"] == "[]", f"{module} imports {lines['IMPORT']} at import time"
    loaded, helps = lines["HELP"].rsplit(" ", 1)
    assert loaded == "[]", f"the help of {module}'s commands loads {loaded}"
    assert int(helps) >= 1
