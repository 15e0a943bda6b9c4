"""A real Celery worker on a real Redis broker runs the tasks (no eager mode)."""

from __future__ import annotations

import time

import httpx
import pytest
from celery import signals
from celery.contrib.testing.worker import start_worker
from pydantic import SecretStr
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, select

from config.settings import Settings
from payouts.ledger.db import make_engine, session_scope
from payouts.ledger.models import Run
from payouts.runs.service import calculate_run
from payouts.snapshot.load import load_snapshot
from payouts.stellar.keys import KeyFileError
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


def test_only_network_and_database_errors_are_transient():
    assert tasks.is_transient(httpx.ConnectError("refused"))
    assert tasks.is_transient(OperationalError("SELECT 1", {}, Exception("server closed the connection")))
    assert tasks.is_transient(ConnectionResetError())
    assert not tasks.is_transient(FileNotFoundError("payout.key"))
    assert not tasks.is_transient(PermissionError("payout.key"))
    assert not tasks.is_transient(KeyFileError("key file payout.key does not exist"))


@pytest.mark.parametrize("setting", ["payout_key_file", "stellar_accounts_file"])
def test_a_missing_key_file_fails_the_payment_task_at_once_and_is_not_retried(
    redis_server, sqlite_url, tmp_path, setting
):
    missing = tmp_path / "keys" / "payout.key"
    with session_scope(make_engine(sqlite_url)) as session:
        path = factories.write(tmp_path / "s.json", factories.snapshot())
        run = calculate_run(session, load_snapshot(path)).run
        assert run is not None
        run_id = run.id
    failures: list[BaseException] = []
    retries: list[object] = []

    def on_failure(sender=None, exception=None, **_kwargs):
        failures.append(exception)

    def on_retry(sender=None, reason=None, **_kwargs):
        retries.append(reason)

    signals.task_failure.connect(on_failure, sender=tasks.pay_run, weak=False)
    signals.task_retry.connect(on_retry, sender=tasks.pay_run, weak=False)
    redis_server = RedisServer.start(dir=tmp_path / "redis")  # its own broker: a fresh producer pool
    settings = Settings(
        database_url=SecretStr(sqlite_url), broker_url=SecretStr(redis_server.url), **{setting: missing}
    )
    use_settings(settings)
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
            tasks.pay_run.delay(run_id)
            deadline = time.monotonic() + 20
            while not failures and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.5)  # a retry (backoff 1 s) would have been scheduled by now
    finally:
        signals.task_failure.disconnect(on_failure, sender=tasks.pay_run)
        signals.task_retry.disconnect(on_retry, sender=tasks.pay_run)
        PayoutTask._engine = None
        redis_server.stop()
    assert retries == []
    assert len(failures) == 1 and isinstance(failures[0], KeyFileError)
    assert f"{missing} does not exist" in str(failures[0])
