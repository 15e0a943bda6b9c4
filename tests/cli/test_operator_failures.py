"""Every expected operator failure is a short message naming what, where and what to do.

Each test runs the real command line in a subprocess (`python -m payouts.cli.main ...`) with a bad
environment or a stopped server, and checks the message, the exit code and that no traceback
(nor a secret) is printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from stellar_sdk import Keypair
from typer.testing import CliRunner

from payouts.cli.main import app
from payouts.sandbox import running_sandbox
from payouts.sandbox.accounts import init_sandbox
from payouts.stellar.keys import write_keypair
from tests import factories
from tests.support.servers import PostgresServer, RedisServer, free_port

ROOT = Path(__file__).resolve().parents[2]


def payouts(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PAYOUTS_")}
    base["PYTHONPATH"] = str(ROOT)
    base["PAYOUTS_STATE_DIR"] = os.environ["PAYOUTS_STATE_DIR"]
    return subprocess.run(
        [sys.executable, "-m", "payouts.cli.main", *args],
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def assert_short_failure(result: subprocess.CompletedProcess, *expected: str, max_lines: int = 2) -> str:
    text = result.stderr + result.stdout
    assert result.returncode != 0, text
    assert "Traceback" not in text, text
    for part in expected:
        assert part in text, text
    error_lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert 1 <= len(error_lines) <= max_lines, text
    return text


def test_bad_settings_listed_once_each_by_name_without_values():
    seed = Keypair.random().secret
    result = payouts(
        "runs",
        env={"PAYOUTS_APPROVERS": f"GABC,{seed}", "PAYOUTS_APPROVALS_REQUIRED": "two", "PAYOUTS_NETWORK": "moon"},
    )
    text = assert_short_failure(
        result, "PAYOUTS_APPROVERS", "PAYOUTS_APPROVALS_REQUIRED", "PAYOUTS_NETWORK", "valid integer", max_lines=4
    )
    assert result.returncode == 2
    assert text.count("PAYOUTS_APPROVERS") == 1
    assert "input_value" not in text and "GABC" not in text and seed not in text and "moon" not in text


def test_bad_setting_of_a_subcommand_group():
    result = payouts("db", "upgrade", env={"PAYOUTS_BATCH_SIZE": "500"})
    assert_short_failure(result, "PAYOUTS_BATCH_SIZE", "100")


def test_ledger_refused_names_the_masked_url():
    port = free_port()
    result = payouts("runs", env={"PAYOUTS_DATABASE_URL": f"postgresql://payer:hunter2@127.0.0.1:{port}/ledger"})
    text = assert_short_failure(result, "connection refused", f"postgresql+psycopg://payer:***@127.0.0.1:{port}/ledger")
    assert "hunter2" not in text and "OperationalError" not in text


def test_ledger_of_an_unknown_kind():
    result = payouts("runs", env={"PAYOUTS_DATABASE_URL": "mysql://payer:hunter2@127.0.0.1:1/ledger"})
    text = assert_short_failure(result, "PAYOUTS_DATABASE_URL", "postgresql://")
    assert "hunter2" not in text


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_postgres_urls_work(postgres_server: PostgresServer, scheme: str):
    # a real server: the hosting providers' spelling opens the ledger with the psycopg driver
    url = postgres_server.url().replace("postgresql+psycopg", scheme)
    result = payouts("runs", env={"PAYOUTS_DATABASE_URL": url})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_postgres_stopped_says_connection_refused():
    server = PostgresServer.start()
    url = server.url().replace("postgresql+psycopg", "postgres")
    server.stop()
    result = payouts("runs", env={"PAYOUTS_DATABASE_URL": url})
    assert_short_failure(result, "connection refused", f"127.0.0.1:{server.port}", "PAYOUTS_DATABASE_URL")


def test_redis_stopped_names_the_broker():
    redis = RedisServer.start()
    url = f"redis://:s3cret@127.0.0.1:{redis.port}/0"
    redis.stop()
    result = payouts("run", "--period", "2025-11", env={"PAYOUTS_BROKER_URL": url})
    text = assert_short_failure(result, f"redis://:***@127.0.0.1:{redis.port}/0", "--in-process")
    assert "s3cret" not in text


def test_key_file_missing():
    result = payouts("approve", "1", "-k", "/nonexistent/approver.key", "-y")
    assert_short_failure(result, "/nonexistent/approver.key")


@pytest.fixture
def calculated_run(tmp_path, monkeypatch, sqlite_url):
    """A ledger with an approved run and a sandbox accounts file; the sandbox is gone afterwards."""
    runner = CliRunner()
    with running_sandbox(ledger_close_s=0.1, seed=3) as sandbox:
        accounts = tmp_path / "accounts.json"
        document = init_sandbox(sandbox.url, accounts, farmers=2, channels=1).document
    approver = Keypair.random()
    write_keypair(tmp_path / "approver.key", approver)
    env = {
        "PAYOUTS_DATABASE_URL": sqlite_url,
        "PAYOUTS_STELLAR_ACCOUNTS_FILE": str(accounts),
        "PAYOUTS_APPROVERS": approver.public_key,
        "PAYOUTS_NETWORK": "dev",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    farms = [
        {"farm_id": 100 + i, "name": f"farm {i}", "twin_id": 7, "certification": "NotCertified", "stellar_address": f}
        for i, f in enumerate(farmer["public_key"] for farmer in document["farmers"])
    ]
    nodes = [factories.node(1000 + n, farm_id=100 + n % 2) for n in range(4)]
    snapshot = factories.write(tmp_path / "month.json", factories.snapshot(nodes=nodes, farms=farms))
    run_id = json.loads(runner.invoke(app, ["calculate", "-s", str(snapshot), "--json"]).stdout)["run_id"]
    approved = runner.invoke(app, ["approve", str(run_id), "-k", str(tmp_path / "approver.key"), "-y"])
    assert approved.exit_code == 0, approved.output
    return run_id, env


@pytest.mark.parametrize("command", ["pay", "reconcile"])
def test_horizon_down_names_the_url_and_says_rerun_is_safe(calculated_run, command):
    run_id, env = calculated_run
    url = f"http://127.0.0.1:{free_port()}"
    args = [command, str(run_id)] if command == "pay" else [command, "--period-offset", "81"]
    result = payouts(*args, env=env | {"PAYOUTS_HORIZON_URL": url})
    assert_short_failure(result, url, "rerun is safe", f"payouts {command}")


def test_double_signing_is_one_line(calculated_run, tmp_path):
    run_id, env = calculated_run
    result = payouts("approve", str(run_id), "-k", str(tmp_path / "approver.key"), "-y", env=env)
    text = result.stderr + result.stdout
    assert result.returncode != 0
    assert "Traceback" not in text
    assert f"run {run_id} is approved" in result.stderr, text


def test_worker_with_a_bad_setting_says_which_and_stops():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYOUTS_")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "PAYOUTS_APPROVALS_REQUIRED": "two",
        "PAYOUTS_STATE_DIR": os.environ["PAYOUTS_STATE_DIR"],
    }
    result = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "--quiet", "worker", "--pool", "solo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_short_failure(result, "PAYOUTS_APPROVALS_REQUIRED", "valid integer", max_lines=3)
    assert result.returncode == 2 and "two" not in result.stderr.replace("(fix it", "")
