"""One log shape for a worker process: every line Celery, Alembic or the product writes is one
JSON object, and `run_id`/`period` are bound while a task runs and cleared after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.settings import Settings
from tests.support.celery import use_settings
from tests.support.servers import RedisServer
from workers import tasks

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer.start(dir=tmp_path / "redis")
    yield server
    server.stop()


def _lines(log: Path) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.strip()]


def test_worker_writes_json_lines_only_with_task_context(redis_server, sqlite_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYOUTS_")} | {
        "PYTHONPATH": str(ROOT),
        "PAYOUTS_STATE_DIR": str(tmp_path / "state"),
        "PAYOUTS_DATABASE_URL": sqlite_url,
        "PAYOUTS_BROKER_URL": redis_server.url,
        "PAYOUTS_LOG_FORMAT": "json",
        "PAYOUTS_FIRST_PERIOD": "2025-11",
    }
    use_settings(Settings(database_url=sqlite_url, broker_url=redis_server.url))
    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.celery_app", "--quiet", "worker", "--pool", "solo"]
            + ["--without-gossip", "--without-mingle", "--loglevel", "INFO"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        offset = 91  # 2025-11: no snapshot in the drop folder, so the period waits for one
        tasks.advance_period.delay(offset)
        tasks.calculate_snapshot.delay(str(tmp_path / "missing.json"))
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if sum(
                "payouts.runs.calculate" in line and "succeeded" in line or "raised" in line for line in _lines(log)
            ):
                break
            if worker.poll() is not None:
                break
            time.sleep(0.3)
        lines = _lines(log)  # before the shutdown: Celery's signal handler prints its one plain line
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert lines, "the worker wrote nothing"
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"a line that is not JSON: {line!r}\n" + "\n".join(lines))
    assert not any("celery.redirected" in line for line in lines)
    failed = [r for r in records if r["level"] == "error"]
    assert failed and "file not found" in json.dumps(failed[0]["exception"]), failed
    for record in records:
        assert {"event", "level", "timestamp"} <= record.keys(), record
    # Celery's own lines carry their logger and level; the ready line is INFO, not WARNING
    ready = [r for r in records if "ready" in str(r["event"])]
    assert ready and ready[0]["level"] == "info" and ready[0]["logger"].startswith("celery"), ready
    period_lines = [r for r in records if r.get("task") == "payouts.advance_period"]
    assert period_lines and all(r.get("period") == "2025-11" for r in period_lines), period_lines
    # the next task's lines do not inherit the previous task's period
    later = [r for r in records if r.get("task") == "payouts.runs.calculate"]
    assert later and all("period" not in r for r in later), later
