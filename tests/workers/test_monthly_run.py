"""The monthly job on real Celery workers and a real Redis broker (no eager mode): a full run,
doubled triggers, a run waiting for approvals, a worker killed mid-payment, Redis restarted
mid-run, two beat processes, and the trigger under its old task name."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.schedules import schedule
from redbeat import RedBeatSchedulerEntry

from payouts.sandbox import running_sandbox
from payouts.stellar.horizon import HorizonClient
from payouts.wiring import build_monthly_job
from tests.support.celery import use_settings
from tests.support.monthly import Month, approve, count_events, paid_count, prepare_month, run_of, wait_until
from tests.support.payments import check_invariants
from tests.support.servers import RedisServer
from workers import tasks
from workers.base import PayoutTask
from workers.celery_app import app

# whole months on real workers: killed, restarted, doubled
pytestmark = pytest.mark.slow


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer.start(dir=tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def sandbox():
    with running_sandbox(ledger_close_s=0.1, submission_timeout_s=5) as server:
        yield server


def _use(month: Month) -> None:
    use_settings(month.settings)


@pytest.fixture
def thread_worker():
    workers = []

    def start(month: Month):
        _use(month)
        context = start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=60)
        context.__enter__()
        workers.append(context)

    yield start
    for context in workers:
        context.__exit__(None, None, None)
    PayoutTask._engine = None


def _worker_process(month: Month, tmp_path, name: str) -> subprocess.Popen:
    env = {**os.environ, **month.environment()}
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.celery_app",
            "worker",
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--hostname",
            f"{name}@%h",
            "--loglevel",
            "INFO",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def _status(month: Month) -> str | None:
    run = run_of(month)
    return run.status if run else None


def test_a_month_runs_end_to_end_on_workers_with_doubled_triggers(
    redis_server, sandbox, ledger_url, tmp_path, thread_worker
):
    month = prepare_month(tmp_path, sandbox.url, ledger_url, broker_url=redis_server.url)
    thread_worker(month)
    tasks.monthly_job.delay()
    wait_until(lambda: _status(month) == "calculated", 60, "the period to be calculated")
    # triggers while the run waits for approvals touch nothing
    for _ in range(2):
        tasks.monthly_job.delay()
        tasks.advance_period.delay(month.period.offset)
    time.sleep(2)
    assert _status(month) == "calculated" and paid_count(month) == 0

    approve(month, run_of(month).id)
    tasks.advance_period.delay(month.period.offset)  # the trigger fired twice at once
    tasks.monthly_job.delay()
    wait_until(lambda: _status(month) == "exported", 120, "the run to be paid, reconciled and exported")
    time.sleep(1)  # let the doubled tasks finish
    assert count_events(month, "run.calculated") == 1
    assert count_events(month, "run.exported") == 1
    with HorizonClient(sandbox.url) as client:
        payments = check_invariants(month.db, client, month.document, run_of(month).id)
    assert sum(p.status == "paid" for p in payments) > 20


def test_a_worker_killed_while_paying_comes_back_and_pays_nothing_twice(redis_server, sandbox, sqlite_url, tmp_path):
    month = prepare_month(tmp_path, sandbox.url, sqlite_url, broker_url=redis_server.url, nodes=120, channels=2)
    _use(month)
    build_monthly_job(month.settings, month.db).advance(month.period.offset)  # calculate here
    approve(month, run_of(month).id)
    first = _worker_process(month, tmp_path, "first")
    try:
        tasks.advance_period.delay(month.period.offset)
        wait_until(lambda: paid_count(month) >= 10, 60, "payments to start")
        _kill(first)
        paid_at_kill = paid_count(month)
        assert _status(month) == "paying" and paid_at_kill < 100
        second = _worker_process(month, tmp_path, "second")
        try:
            # the killed task is redelivered after the visibility timeout; the lease lapsed
            wait_until(lambda: _status(month) == "exported", 180, "the redelivered task to finish the run")
        finally:
            _kill(second)
    finally:
        if first.poll() is None:
            _kill(first)
    with HorizonClient(sandbox.url) as client:
        payments = check_invariants(month.db, client, month.document, run_of(month).id)
    assert sum(p.status == "paid" for p in payments) > paid_at_kill


def test_redis_restarted_mid_run_loses_nothing(redis_server, sandbox, sqlite_url, tmp_path, thread_worker):
    month = prepare_month(tmp_path, sandbox.url, sqlite_url, broker_url=redis_server.url, nodes=120, channels=2)
    build_monthly_job(month.settings, month.db).advance(month.period.offset)
    approve(month, run_of(month).id)
    thread_worker(month)
    tasks.advance_period.delay(month.period.offset)
    wait_until(lambda: paid_count(month) >= 10, 60, "payments to start")
    port, folder = redis_server.port, redis_server.dir
    redis_server.stop()
    time.sleep(1)
    restarted = RedisServer.start(port=port, dir=folder)
    redis_server.process = restarted.process
    tasks.monthly_job.delay()  # the next daily trigger picks up whatever the restart cost
    wait_until(lambda: _status(month) == "exported", 180, "the run to finish after the restart")
    with HorizonClient(sandbox.url) as client:
        check_invariants(month.db, client, month.document, run_of(month).id)


def test_two_beat_processes_fire_the_trigger_from_one_at_a_time(redis_server, sandbox, sqlite_url, tmp_path):
    month = prepare_month(
        tmp_path, sandbox.url, sqlite_url, broker_url=redis_server.url, schedule_every_s=1.0, beat_lock_timeout_s=5
    )
    env = {**os.environ, **month.environment()}
    beats = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "workers.celery_app",
                "beat",
                "--loglevel",
                "INFO",
                "-s",
                str(tmp_path / f"beat-{n}"),
            ],
            env=env,
            stdout=open(tmp_path / f"beat-{n}.log", "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for n in range(2)
    ]
    client = redis.Redis.from_url(redis_server.url)
    try:
        wait_until(lambda: client.llen("celery") >= 1, 30, "the first trigger")
        start, started_at = client.llen("celery"), time.monotonic()
        time.sleep(6)
        fired = client.llen("celery") - start
        elapsed = time.monotonic() - started_at
        assert 3 <= fired <= elapsed + 2, f"{fired} triggers in {elapsed:.1f} s: more than one scheduler fired"
        # the active beat dies: the standby takes over once the lock lapses
        holder = next(b for b in beats if _fired_from(tmp_path, beats.index(b)))
        _kill(holder)
        before = client.llen("celery")
        wait_until(lambda: client.llen("celery") >= before + 2, 30, "the standby beat to take over")
    finally:
        for beat in beats:
            if beat.poll() is None:
                _kill(beat)


def _fired_from(tmp_path, index: int) -> bool:
    return "Sending due task" in (tmp_path / f"beat-{index}.log").read_text()


def test_a_trigger_queued_under_the_old_task_name_runs_the_monthly_job(
    redis_server, sandbox, sqlite_url, tmp_path, thread_worker
):
    month = prepare_month(tmp_path, sandbox.url, sqlite_url, broker_url=redis_server.url)
    thread_worker(month)
    app.send_task("payouts.advance_due")  # as a worker or beat from before the rename queued it
    wait_until(lambda: _status(month) == "calculated", 60, "the period to be calculated")
    assert count_events(month, "run.calculated") == 1


def test_beat_replaces_the_entry_saved_under_the_old_name(redis_server, sandbox, sqlite_url, tmp_path):
    month = prepare_month(tmp_path, sandbox.url, sqlite_url, broker_url=redis_server.url, schedule_every_s=1.0)
    # what a beat from before the rename left in Redis: its static entry, firing the old task
    before = Celery(broker=redis_server.url)
    before.conf.update(redbeat_redis_url=redis_server.url, redbeat_key_prefix="payouts:redbeat")
    old = RedBeatSchedulerEntry("payouts-reconciler", "payouts.advance_due", schedule(1.0), app=before)
    old.save()
    client = redis.Redis.from_url(redis_server.url)
    client.sadd(before.redbeat_conf.statics_key, "payouts-reconciler")
    assert client.exists(old.key)

    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.celery_app", "beat", "-s", str(tmp_path / "beat")],
        env={**os.environ, **month.environment()},
        stdout=open(tmp_path / "beat.log", "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: client.llen("celery") >= 3, 30, "three triggers")
    finally:
        _kill(beat)
    assert not client.exists(old.key)
    fired = {json.loads(message)["headers"]["task"] for message in client.lrange("celery", 0, -1)}
    assert fired == {"payouts.monthly_job"}
