"""No ledger transaction sits open while the payer waits on the network (PostgreSQL,
pg_stat_activity): an open transaction "idle in transaction" holds its locks and snapshot (no
migration, no VACUUM of what it saw), pins a pooled connection, and is cut by a server's
`idle_in_transaction_session_timeout`, failing a task after its money went out."""

from __future__ import annotations

import threading
import time
from typing import Self

import httpx
import psycopg
import pytest
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from config.settings import Settings
from payouts.ledger.db import make_engine
from payouts.ledger.states import RunStatus
from payouts.ledger.unit_of_work import UnitsOfWork
from payouts.runs.payment import PaymentEngine
from payouts.sandbox.faults import FaultSpec, SubmitFault
from payouts.stellar.horizon import HorizonClient
from tests.runs.conftest import paying  # noqa: F401
from tests.support.celery import use_settings
from tests.support.payments import check_invariants
from tests.support.servers import RedisServer
from workers import tasks
from workers.base import PayoutTask


class IdleWatch:
    """Samples pg_stat_activity for the ledger's database every 20 ms: the longest time any
    other connection spent in one transaction while it was idle in it."""

    def __init__(self, url: str, application_name: str | None = None) -> None:
        parsed = make_url(url)
        self.dsn = f"host={parsed.host} port={parsed.port} user={parsed.username} dbname={parsed.database}"
        self.application_name = application_name
        self.longest_s = 0.0
        #: the longest stretch one connection sat idle inside a transaction (since its last statement)
        self.longest_idle_s = 0.0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute(
                    "SELECT coalesce(max(extract(epoch FROM clock_timestamp() - xact_start)), 0), "
                    "coalesce(max(extract(epoch FROM clock_timestamp() - state_change)), 0) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND state LIKE 'idle in transaction%%' AND (%s::text IS NULL OR application_name = %s::text)",
                    (self.application_name, self.application_name),
                ).fetchone()
                assert row is not None
                self.longest_s = max(self.longest_s, float(row[0]))
                self.longest_idle_s = max(self.longest_idle_s, float(row[1]))
                self.samples += 1
                time.sleep(0.02)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join(10)


def _slow_inclusions(sandbox, count: int) -> None:
    """Each of the next `count` submissions lands 10 ledgers (1 s) later and is answered then."""
    sandbox.faults.spec = FaultSpec.parse("delay=0:10")
    sandbox.faults.force(SubmitFault.delay, times=count)


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_the_payment_task_holds_no_transaction_open_while_it_pays(paying, ledger_url, tmp_path):  # noqa: F811
    sandbox, _document, _db, run_id, engine = paying(channels=1)
    broker = RedisServer.start(dir=tmp_path / "redis")  # the task queues the period's next step
    settings = Settings(
        database_url=SecretStr(ledger_url),
        broker_url=SecretStr(broker.url),
        network="dev",
        horizon_url=sandbox.url,
        stellar_accounts_file=tmp_path / "accounts.json",
        approvers=list(engine.config.approvers),
        approvals_required=1,
        pay_task_budget_s=60,
        tx_timeout_s=30,
    )
    use_settings(settings)
    _slow_inclusions(sandbox, 8)
    try:
        with IdleWatch(ledger_url) as watch:
            started = time.monotonic()
            outcome = tasks.pay_run(run_id)  # the task's body, in this process
            took_s = time.monotonic() - started
    finally:
        PayoutTask._engine = None
        broker.stop()
    assert outcome["status"] == RunStatus.PAID and outcome["paid"] == 8
    assert took_s > 6 and watch.samples > 50  # the payer waited on the network for seconds
    assert watch.longest_s < 2.0, f"a transaction sat idle for {watch.longest_s:.1f} s of a {took_s:.1f} s payment"


class SlowTransport(httpx.HTTPTransport):
    """HTTP to the sandbox with a far Horizon's round trip added to every request."""

    def __init__(self, latency_s: float) -> None:
        super().__init__()
        self.latency_s = latency_s
        self.requests = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        time.sleep(self.latency_s)
        return super().handle_request(request)


@pytest.mark.parametrize("ledger_url", ["postgresql"], indirect=True)
def test_the_payment_engine_waits_on_horizon_with_no_transaction_open(paying, ledger_url):  # noqa: F811
    sandbox, document, db, run_id, fixture_engine = paying(channels=2)
    name = "payer-under-watch"
    payer_db = make_engine(make_url(ledger_url).update_query_dict({"application_name": name}).render_as_string(False))
    slow = SlowTransport(latency_s=0.3)
    client = HorizonClient(sandbox.url, timeout_s=10, transport=slow)
    payer = PaymentEngine(UnitsOfWork(payer_db), client, fixture_engine.keys, fixture_engine.config)
    try:
        with IdleWatch(ledger_url, application_name=name) as watch:
            report = payer.pay(run_id)
    finally:
        payer_db.dispose()
    assert report.status == RunStatus.PAID and report.paid >= 3, report
    # every step read Horizon: the start's account reads, the claim, the chain scan, the builds
    assert slow.requests > 20 and watch.samples > 100, (slow.requests, watch.samples)
    assert watch.longest_idle_s < 0.2, (
        f"a payer's transaction sat idle for {watch.longest_idle_s:.2f} s waiting on a 0.3 s Horizon"
    )
    check_invariants(db, HorizonClient(sandbox.url), document, run_id)
