"""A real Celery worker on a real Redis broker runs the calculation task (no eager mode)."""

from __future__ import annotations

import pytest
from celery.contrib.testing.worker import start_worker
from pydantic import SecretStr
from sqlmodel import Session, select

from config.settings import Settings
from payouts.ledger.db import make_engine
from payouts.ledger.models import Run
from tests import factories
from tests.support.celery import use_settings
from tests.support.servers import RedisServer
from workers import tasks
from workers.base import PayoutTask
from workers.celery_app import app


@pytest.fixture(scope="module")
def redis_server():
    server = RedisServer.start()
    yield server
    server.stop()


@pytest.fixture
def worker(redis_server, sqlite_url):
    settings = Settings(database_url=SecretStr(sqlite_url), broker_url=SecretStr(redis_server.url))
    use_settings(settings)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        yield sqlite_url
    PayoutTask._engine = None


def _wait_for_runs(url: str, count: int, timeout_s: float = 30) -> list[Run]:
    import time

    engine = make_engine(url)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with Session(engine) as session:
            runs = session.exec(select(Run)).all()
        if len(runs) >= count:
            return runs
        time.sleep(0.2)
    raise AssertionError(f"expected {count} run(s) within {timeout_s} s, found {len(runs)}")


def test_a_doubled_calculate_task_records_one_run(worker, tmp_path):
    path = factories.write(tmp_path / "s.json", factories.snapshot())
    tasks.calculate_snapshot.delay(str(path))
    tasks.calculate_snapshot.delay(str(path))
    runs = _wait_for_runs(worker, 1)
    import time

    time.sleep(1.0)  # give the second delivery time to finish
    runs = _wait_for_runs(worker, 1)
    assert len(runs) == 1 and runs[0].node_count == 1
